"""Connecting to ZooKeeper with kazoo, and turning kazoo's errors into ours."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError, SequentialThreadingHandler
from kazoo.retry import KazooRetry
from kazoo.security import make_digest_acl, make_digest_acl_credential

from orchestrator.adapters.secrets import read_secret
from orchestrator.config.model import Topology
from orchestrator.errors import Failed, LeaseLost, Unavailable

log = logging.getLogger(__name__)

# A TCP connect to a ZooKeeper node answers in milliseconds or not at all.
CONNECT_TIMEOUT_S = 1.0


class BoundedConnectHandler(SequentialThreadingHandler):
    """kazoo gives each TCP connect the whole session timeout. A node behind a cut link
    (or a dead host) then costs seconds per reconnection before the next node is tried:
    seen on the lab, 4 s of a 4 s session, which left an active site's controller unable
    to confirm for 7 s after a ZooKeeper leader elsewhere was cut off."""

    def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout")
        kwargs["timeout"] = (
            CONNECT_TIMEOUT_S if timeout is None else min(timeout, CONNECT_TIMEOUT_S)
        )
        return super().create_connection(*args, **kwargs)


def connect(topo: Topology, *, timeout: float = 10.0, identity: str | None = None) -> KazooClient:
    """A started client for the topology's ensemble, or Unavailable within `timeout`.
    `identity` ("user:password"): a controller's own identity, added to sitectl's."""
    zk = topo.zookeeper
    auth_data = []
    default_acl = None
    if zk.auth is not None:
        credentials = read_secret(zk.auth.credentials, topo.base_dir).reveal()
        user, _, password = credentials.partition(":")
        auth_data = [("digest", credentials)]
        # Only sitectl's own identity may read or change its znodes.
        default_acl = [make_digest_acl(user, password, all=True)]
    if identity is not None:
        auth_data.append(("digest", identity))
    tls: dict[str, Any] = {}
    if zk.tls is not None:
        tls = {
            "use_ssl": True,
            "verify_certs": True,
            "ca": str(topo.resolve(zk.tls.ca_file)),
            "certfile": str(topo.resolve(zk.tls.cert_file)) if zk.tls.cert_file else None,
            "keyfile": str(topo.resolve(zk.tls.key_file)) if zk.tls.key_file else None,
        }
    client = KazooClient(
        hosts=zk.connect_string(),
        timeout=zk.session_timeout,
        # kazoo backs off up to an hour between connection attempts; after a leader
        # election that cost seconds of a controller's confirmations (and a dead-man
        # agent fences its site after a few). The ensemble is a handful of nodes.
        connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=0.5),
        handler=BoundedConnectHandler(),
        auth_data=auth_data or None,
        default_acl=default_acl,
        logger=logging.getLogger("kazoo"),
        **tls,
    )
    try:
        client.start(timeout=timeout)
    except KazooTimeoutError:
        client.close()
        over = " over TLS (is it the secureClientPort, and does tls.ca_file sign its certificate?)"
        raise Unavailable(
            f"ZooKeeper ({zk.connect_string()}) did not answer within {timeout:.0f} s"
            + (over if zk.tls is not None else "")
        ) from None
    return client


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Run a ZooKeeper call, mapping kazoo's exceptions onto our three kinds."""
    try:
        yield
    except SessionExpiredError:
        raise LeaseLost(f"{what}: the ZooKeeper session expired") from None
    except (ConnectionLoss, OperationTimeoutError, KazooTimeoutError) as exc:
        raise Unavailable(f"{what}: ZooKeeper unreachable ({exc.__class__.__name__})") from None
    except (NoAuthError, AuthFailedError):
        raise Failed(f"{what}: ZooKeeper refused our credentials — check zookeeper.auth") from None
    except KazooException as exc:
        raise Failed(f"{what}: {exc.__class__.__name__} {exc}") from None


def digest_id(credentials: str) -> str:
    """ZooKeeper's name for the digest identity "user:password": user:base64(sha1(...))."""
    user, _, password = credentials.partition(":")
    return str(make_digest_acl_credential(user, password))


def sitectl_id(topo: Topology) -> str | None:
    """sitectl's own digest identity (zookeeper.auth), as ZooKeeper names it."""
    if topo.zookeeper.auth is None:
        return None
    return digest_id(read_secret(topo.zookeeper.auth.credentials, topo.base_dir).reveal())
