"""Connecting to ZooKeeper with kazoo, and turning kazoo's errors into ours."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import make_digest_acl

from orchestrator.adapters.secrets import read_secret
from orchestrator.config.model import Topology
from orchestrator.errors import Failed, LeaseLost, Unavailable

log = logging.getLogger(__name__)


def connect(topo: Topology, *, timeout: float = 10.0) -> KazooClient:
    """A started client for the topology's ensemble, or Unavailable within `timeout`."""
    zk = topo.zookeeper
    auth_data = []
    default_acl = None
    if zk.auth is not None:
        credentials = read_secret(zk.auth.credentials, topo.base_dir).reveal()
        user, _, password = credentials.partition(":")
        auth_data = [("digest", credentials)]
        # Only sitectl's own identity may read or change its znodes.
        default_acl = [make_digest_acl(user, password, all=True)]
    client = KazooClient(
        hosts=zk.connect_string(),
        timeout=zk.session_timeout,
        auth_data=auth_data or None,
        default_acl=default_acl,
        logger=logging.getLogger("kazoo"),
    )
    try:
        client.start(timeout=timeout)
    except KazooTimeoutError:
        client.close()
        raise Unavailable(
            f"ZooKeeper ({zk.connect_string()}) did not answer within {timeout:.0f} s"
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
