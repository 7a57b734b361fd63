"""One datacenter's S3 endpoint for the lab: moto's S3 server plus cross-site replication.

This process **stands in for the object store's own replication** (Scality RING / AWS S3
Cross-Region Replication). No real S3 server is packaged on the lab machines; moto speaks
the S3 wire protocol and stores bucket replication configuration, but it replicates
nothing and reports no ``ReplicationStatus``. The replication loop below adds that, using
moto's in-process structures (``moto.s3.models.s3_backends`` → ``FakeBucket.keys`` →
``FakeKey``) rather than reimplementing S3.

Command line (one process per datacenter)::

    python -m orchestrator.lab.s3store --site dc1 --listen 198.18.1.21:9000 \\
        --peer dc2=http://198.18.2.21:9000 \\
        --access-key-file KEYFILE --secret-key-file SECRETFILE \\
        [--buckets mail-blobs,archive] [--no-auth] [--scan-interval 0.2] [--max-attempts 3] \\
        [--failed-retry-interval 5]

``--site``            name of this site; written on every replica it sends
                      (``x-amz-meta-sitectl-replica-source``).
``--listen``          HOST:PORT to serve S3 on (port 0 = pick a free one; the chosen
                      address is printed on stdout as ``listening on http://HOST:PORT``).
``--peer``            NAME=URL of the other datacenter's endpoint. Every enabled replication
                      rule of every bucket here copies to this peer; the destination ARN
                      ``arn:aws:s3:::BUCKET`` names the peer's bucket. Optional: without it
                      replication rules are stored but every matching version goes FAILED.
``--access-key-file`` / ``--secret-key-file``  files holding the lab's S3 credentials (first
                      line of each). They are **enforced**: moto's own IAM emulation is switched
                      on (``INITIAL_NO_AUTH_ACTION_COUNT=0``) with one IAM user holding exactly
                      this key pair and an ``s3:*`` policy, so a request signed with any other
                      key gets ``InvalidAccessKeyId`` / ``SignatureDoesNotMatch``. The
                      replication loop signs its copies to the peer with the same pair (the lab
                      gives both sites one key pair).
``--no-auth``         accept any credentials (moto's default), for debugging.
``--buckets``         comma-separated buckets to create at start, with versioning enabled
                      (replication needs versioning, as on S3).

Replication behaviour (what a client observes):

* A version put into a bucket whose replication configuration has an enabled rule
  matching its key (``Filter.Prefix`` / legacy ``Prefix``), after that configuration was
  put, reports ``x-amz-replication-status: PENDING`` (boto3 ``ReplicationStatus``), then
  ``COMPLETED`` once copied to the peer, or ``FAILED`` after ``--max-attempts`` failed
  attempts (peer unreachable, destination bucket missing...). Versions put before the rule
  existed are not replicated, as on S3.
* The copy at the peer reports ``REPLICA`` and carries ``x-amz-meta-sitectl-replica-source``
  (source site) and ``x-amz-meta-sitectl-source-version-id``; a replica is never replicated
  again, so a rule on the peer pointing back (reverse direction after a reprotect, or both
  directions at once) cannot loop. User metadata and Content-Type are copied; the replica
  gets the peer's own version id (the S3 API cannot choose one).
* Lab difference from S3, on purpose: FAILED versions are retried every
  ``--failed-retry-interval`` seconds (S3 needs a Batch Replication job for that), so a
  drill can heal a site and watch the backlog drain. Delete markers are not replicated
  (S3's default, ``DeleteMarkerReplication`` disabled).
* The direction follows the configuration: put a replication configuration on dc2's bucket
  (destination dc1's bucket) after a reprotect and this loop at dc2 honours it; delete the
  one at dc1 to stop the old direction.

Backlog / lag: ``GET /_sitectl/replication`` on the same port answers JSON (not S3 API: S3
has no call that counts pending versions; ``_sitectl`` cannot be a bucket name, so the path
cannot collide with a bucket)::

    {"site": "dc1", "peer": "dc2", "buckets": {"mail-blobs": {"pending": 0, "failed": 0,
     "completed": 12, "replica": 0, "oldest_pending_seconds": null, "last_error": null}}}

Per object, ``head_object(...)["ReplicationStatus"]`` is the S3-compatible view.

Stops on SIGTERM or SIGINT: the HTTP server and the replication loop end within ~1 s.
Exit status: 0 after a clean stop; 1 if it cannot listen (one line on stderr, e.g. the
port is in use); 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from moto import settings as moto_settings
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.exceptions import InvalidBucketName
from moto.s3.models import FakeBucket, FakeKey, S3Backend, s3_backends
from werkzeug.serving import make_server

log = logging.getLogger("sitectl.lab.s3store")

REGION = "us-east-1"
STATUS_PATH = "/_sitectl/replication"
# User metadata that marks a replica; moto keeps user metadata under these header names.
META_REPLICA_SOURCE = "x-amz-meta-sitectl-replica-source"
META_SOURCE_VERSION = "x-amz-meta-sitectl-source-version-id"
STATUS_HEADER = "x-amz-replication-status"
LAB_USER = "sitectl-lab"  # the IAM user (inside moto) that owns the lab's key pair

PENDING, COMPLETED, FAILED, REPLICA = "PENDING", "COMPLETED", "FAILED", "REPLICA"


# --- replication rules: pure --------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One enabled rule of a bucket's replication configuration."""

    rule_id: str
    priority: int
    prefix: str
    dest_bucket: str

    def matches(self, key_name: str) -> bool:
        return key_name.startswith(self.prefix)


def bucket_from_arn(arn: str) -> str:
    """``arn:aws:s3:::mail-blobs`` → ``mail-blobs``; a bare bucket name is accepted too."""
    if arn.startswith("arn:"):
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[2] != "s3" or not parts[5]:
            raise ValueError(f"not an S3 bucket ARN: {arn!r}")
        return parts[5].split("/", 1)[0]
    return arn


def _prefix_of(rule: dict[str, Any]) -> str:
    # xmltodict turns an empty <Prefix/> into None; "And" filters carry the prefix inside.
    flt = rule.get("Filter")
    if isinstance(flt, dict):
        if "Prefix" in flt:
            return flt["Prefix"] or ""
        if isinstance(flt.get("And"), dict):
            return flt["And"].get("Prefix") or ""
        return ""
    return rule.get("Prefix") or ""


def parse_rules(config: dict[str, Any] | None) -> list[Rule]:
    """Enabled rules of a replication configuration as moto stores it, highest priority first."""
    if not config:
        return []
    raw = config.get("Rule") or []
    if isinstance(raw, dict):
        raw = [raw]
    rules = [
        Rule(
            rule_id=str(r.get("ID", "")),
            priority=int(r.get("Priority") or 0),
            prefix=_prefix_of(r),
            dest_bucket=bucket_from_arn(r["Destination"]["Bucket"]),
        )
        for r in raw
        if r.get("Status") == "Enabled"
    ]
    return sorted(rules, key=lambda r: -r.priority)


def rule_for(rules: Iterable[Rule], key_name: str) -> Rule | None:
    """The rule that applies to `key_name` (S3 picks the highest priority match)."""
    return next((r for r in rules if r.matches(key_name)), None)


# --- per-version replication state, kept on moto's own FakeKey -----------------------------


@dataclass
class VersionState:
    """What the loop knows about one source version (attached to the FakeKey)."""

    status: str
    dest_bucket: str
    queued_at: float
    attempts: int = 0
    failed_at: float | None = None


_STATE_ATTR = "_sitectl_replication"
_SINCE_ATTR = "_sitectl_replication_since"


def _state(key: FakeKey) -> VersionState | None:
    return getattr(key, _STATE_ATTR, None)


def _is_replica(key: FakeKey) -> bool:
    return META_REPLICA_SOURCE in key.metadata


def _utc(dt: datetime.datetime) -> datetime.datetime:
    # moto keeps naive UTC datetimes.
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.UTC)


def _initial_status(key: FakeKey) -> str | None:
    """Status of a version the loop has not picked up yet.

    Computed on read so that a HEAD right after the PUT already says PENDING, as on S3.
    """
    if _is_replica(key):
        return REPLICA
    bucket = _bucket_of(key)
    if bucket is None:
        return None
    since: datetime.datetime | None = getattr(bucket, _SINCE_ATTR, None)
    if since is None or _utc(key.last_modified) < since:
        return None
    return PENDING if rule_for(parse_rules(bucket.replication), key.name) else None


def _bucket_of(key: FakeKey) -> FakeBucket | None:
    try:
        backend: S3Backend = s3_backends[key.account_id][key.partition]
        return backend.buckets.get(key.bucket_name or "")
    except KeyError:
        return None


def install_moto_hooks() -> None:
    """Teach moto to report replication status and to remember when replication was configured.

    Two small wrappers over moto's own classes, installed once per process:
    ``FakeKey.response_dict`` (the headers of GET/HEAD/PUT) gains ``x-amz-replication-status``;
    ``S3Backend.put_bucket_replication`` stamps the bucket so that only versions put after
    the rule are replicated.
    """
    if getattr(FakeKey, "_sitectl_hooked", False):
        return
    original_headers = FakeKey.response_dict.fget  # type: ignore[attr-defined]

    def response_dict(self: FakeKey) -> dict[str, Any]:
        headers: dict[str, Any] = original_headers(self)
        st = _state(self)
        status = st.status if st else _initial_status(self)
        if status:
            headers[STATUS_HEADER] = status
        return headers

    original_put_rep = S3Backend.put_bucket_replication

    def put_bucket_replication(self: S3Backend, bucket_name: str, replication: Any) -> None:
        bucket = self.get_bucket(bucket_name)
        had_rules = bool(getattr(bucket, "replication", None))
        original_put_rep(self, bucket_name, replication)
        # Replacing a configuration keeps the start; a bucket without one starts now, so
        # versions put while no rule existed are not swept up later (as on S3).
        if not had_rules or getattr(bucket, _SINCE_ATTR, None) is None:
            setattr(bucket, _SINCE_ATTR, datetime.datetime.now(datetime.UTC))

    FakeKey.response_dict = property(response_dict)  # type: ignore[method-assign,assignment]
    S3Backend.put_bucket_replication = put_bucket_replication  # type: ignore[method-assign]
    FakeKey._sitectl_hooked = True  # type: ignore[attr-defined]


# --- the replication loop -----------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    name: str
    url: str


@dataclass
class BucketCounters:
    pending: int = 0
    failed: int = 0
    completed: int = 0
    replica: int = 0
    oldest_pending_seconds: float | None = None
    last_error: str | None = None


@dataclass
class Replicator:
    """Copies new versions of this site's buckets to the peer, per each bucket's rules."""

    site: str
    peer: Peer | None
    access_key: str
    secret_key: str
    max_attempts: int = 3
    failed_retry_interval: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _client: Any = None
    _last_error: dict[str, str] = field(default_factory=dict)

    def _peer_client(self) -> Any:
        if self._client is None and self.peer is not None:
            self._client = boto3.client(
                "s3",
                endpoint_url=self.peer.url,
                region_name=REGION,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                # Retries are ours (attempt counter per version); short timeouts so a hung
                # (SIGSTOPped) peer cannot stall the loop for long.
                config=botocore.config.Config(
                    connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}
                ),
            )
        return self._client

    def _buckets(self) -> Iterator[FakeBucket]:
        for account_id in list(s3_backends.keys()):
            backend = s3_backends[account_id].get("aws")
            if backend is not None:
                yield from list(backend.buckets.values())

    def _due(
        self, key: FakeKey, rules: list[Rule], since: datetime.datetime
    ) -> VersionState | None:
        """The state of `key` if it must be copied now, picking it up if it is new."""
        st = _state(key)
        if st is None:
            if _is_replica(key) or _utc(key.last_modified) < since:
                return None
            rule = rule_for(rules, key.name)
            if rule is None:
                return None
            st = VersionState(status=PENDING, dest_bucket=rule.dest_bucket, queued_at=self.clock())
            setattr(key, _STATE_ATTR, st)
        if st.status == PENDING:
            return st
        retry_due = (
            st.status == FAILED
            and st.failed_at is not None
            and self.clock() - st.failed_at >= self.failed_retry_interval
        )
        return st if retry_due else None

    def run_once(self) -> int:
        """One pass over every bucket; returns how many versions were copied.

        Runs in one thread only. HTTP threads read the per-version state concurrently
        (HEAD, the status endpoint); each field is replaced whole, so they see the old
        value or the new one.
        """
        copied = 0
        # A full scan of every version per pass: fine for a lab's few thousand objects
        # (moto copies each key list under its own lock-free snapshot); a real store
        # keeps a replication queue instead.
        for bucket in self._buckets():
            since = getattr(bucket, _SINCE_ATTR, None)
            try:
                rules = parse_rules(getattr(bucket, "replication", None))
            except (ValueError, KeyError, TypeError) as exc:
                # A rule we cannot read (e.g. a destination that is not an S3 bucket ARN):
                # report it on the status endpoint instead of failing every pass.
                self._last_error[bucket.name] = f"unreadable replication rule: {exc}"
                continue
            if since is None or not rules:
                continue
            peer_down = False
            for _name, versions in bucket.keys.iterlists():
                for key in list(versions):
                    if not isinstance(key, FakeKey):
                        continue  # delete markers are not replicated
                    st = self._due(key, rules, since)
                    if st is None:
                        continue
                    if peer_down:
                        # The peer just failed to answer: count the attempt for every
                        # queued version instead of waiting on each in turn.
                        self._failed(bucket.name, key, st, "peer unreachable")
                        continue
                    try:
                        self._copy(key, st)
                    except _PeerUnreachable as exc:
                        peer_down = True
                        self._failed(bucket.name, key, st, str(exc))
                    except _CopyRefused as exc:
                        self._failed(bucket.name, key, st, str(exc))
                    else:
                        st.status, st.failed_at = COMPLETED, None
                        self._last_error.pop(bucket.name, None)
                        copied += 1
        return copied

    def _failed(self, bucket: str, key: FakeKey, st: VersionState, reason: str) -> None:
        st.attempts += 1
        self._last_error[bucket] = reason
        if st.attempts >= self.max_attempts:
            if st.status != FAILED:
                log.warning(
                    "replication of %s/%s (%s) FAILED: %s", bucket, key.name, key.version_id, reason
                )
            st.status, st.failed_at = FAILED, self.clock()

    def _copy(self, key: FakeKey, st: VersionState) -> None:
        client = self._peer_client()
        if client is None:
            raise _CopyRefused("no --peer configured")
        user_meta = {
            k[len("x-amz-meta-") :]: str(v)
            for k, v in key.metadata.items()
            if k.lower().startswith("x-amz-meta-")
        }
        user_meta[META_REPLICA_SOURCE.removeprefix("x-amz-meta-")] = self.site
        user_meta[META_SOURCE_VERSION.removeprefix("x-amz-meta-")] = key.version_id
        args: dict[str, Any] = {
            "Bucket": st.dest_bucket,
            "Key": key.name,
            "Body": key.value,
            "Metadata": user_meta,
        }
        content_type = key.metadata.get("Content-Type")
        if content_type:
            args["ContentType"] = content_type
        try:
            client.put_object(**args)
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectionClosedError,
        ) as exc:
            raise _PeerUnreachable(f"{self.peer.name if self.peer else '?'}: {exc}") from exc
        except botocore.exceptions.ClientError as exc:
            raise _CopyRefused(f"peer refused: {exc}") from exc

    def counters(self) -> dict[str, BucketCounters]:
        """Backlog per bucket, for the status endpoint."""
        now = self.clock()
        out: dict[str, BucketCounters] = {}
        for bucket in self._buckets():
            c = BucketCounters(last_error=self._last_error.get(bucket.name))
            for _name, versions in bucket.keys.iterlists():
                for key in versions:
                    if not isinstance(key, FakeKey):
                        continue
                    st = _state(key)
                    status = st.status if st else _initial_status(key)
                    if status == PENDING:
                        c.pending += 1
                        if st is not None:
                            age = now - st.queued_at
                            c.oldest_pending_seconds = max(c.oldest_pending_seconds or 0.0, age)
                    elif status == FAILED:
                        c.failed += 1
                    elif status == COMPLETED:
                        c.completed += 1
                    elif status == REPLICA:
                        c.replica += 1
            out[bucket.name] = c
        return out

    def loop(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # the loop must outlive one bad pass; say why and go on
                log.exception("replication pass failed")
            stop.wait(interval)


class _PeerUnreachable(Exception):
    pass


class _CopyRefused(Exception):
    pass


# --- process ------------------------------------------------------------------------------


def _status_app(replicator: Replicator, inner: Any) -> Any:
    """WSGI wrapper: ``GET /_sitectl/replication`` answers the backlog, all else goes to moto."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == STATUS_PATH:
            body = json.dumps(
                {
                    "site": replicator.site,
                    "peer": replicator.peer.name if replicator.peer else None,
                    "buckets": {n: vars(c) for n, c in replicator.counters().items()},
                }
            ).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return inner(environ, start_response)

    return app


def create_buckets(names: Iterable[str]) -> None:
    """Create versioned buckets in moto's default account (idempotent)."""
    backend: S3Backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for name in names:
        if name not in backend.buckets:
            backend.create_bucket(name, REGION)
        backend.put_bucket_versioning(name, "Enabled")


def enforce_credentials(access_key: str, secret_key: str) -> None:
    """Switch on moto's request authentication, accepting exactly this key pair.

    moto checks SigV4 signatures and IAM policies once ``INITIAL_NO_AUTH_ACTION_COUNT``
    requests have been served; the key pair must then belong to a user of its IAM
    emulation. moto generates random key ids, so the lab's are written over them.
    """
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    user = iam.create_user(REGION, LAB_USER)
    iam.put_user_policy(
        LAB_USER,
        "lab-s3-full-access",
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    key = user.create_access_key(prefix="AKIA")
    key.access_key_id, key.secret_access_key = access_key, secret_key
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0


def _read_secret(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.readline().strip()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m orchestrator.lab.s3store",
        description="Lab S3 endpoint (moto) with cross-site replication.",
    )
    p.add_argument("--site", required=True)
    p.add_argument("--listen", required=True, help="HOST:PORT (port 0: any free port)")
    p.add_argument("--peer", help="NAME=URL of the other site's S3 endpoint")
    p.add_argument("--access-key-file", required=True)
    p.add_argument("--secret-key-file", required=True)
    p.add_argument("--no-auth", action="store_true", help="accept any credentials")
    p.add_argument("--buckets", default="", help="comma-separated versioned buckets to create")
    p.add_argument("--scan-interval", type=float, default=0.2)
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--failed-retry-interval", type=float, default=5.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    # Block SIGTERM/SIGINT before any thread exists (threads inherit the mask) and take them
    # with sigwait() in the main thread: setting a threading.Event from a Python signal
    # handler can deadlock on the Event's own lock if the signal lands while the main thread
    # holds it (seen here: a SIGTERM that never stopped the process).
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s s3store[{args.site}] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        print(f"--listen must be HOST:PORT, got {args.listen!r}", file=sys.stderr)
        return 2
    peer = None
    if args.peer:
        name, sep, url = args.peer.partition("=")
        if not sep or not url.startswith("http"):
            print(f"--peer must be NAME=URL, got {args.peer!r}", file=sys.stderr)
            return 2
        peer = Peer(name, url.rstrip("/"))

    access_key, secret_key = _read_secret(args.access_key_file), _read_secret(args.secret_key_file)
    if not access_key or not secret_key:
        print("--access-key-file/--secret-key-file: empty credentials", file=sys.stderr)
        return 2
    if not args.no_auth:
        enforce_credentials(access_key, secret_key)
    install_moto_hooks()
    try:
        create_buckets(b for b in args.buckets.split(",") if b)
    except InvalidBucketName:
        print(f"--buckets: not valid S3 bucket names: {args.buckets!r}", file=sys.stderr)
        return 2
    replicator = Replicator(
        site=args.site,
        peer=peer,
        access_key=access_key,
        secret_key=secret_key,
        max_attempts=args.max_attempts,
        failed_retry_interval=args.failed_retry_interval,
    )
    app = _status_app(replicator, DomainDispatcherApplication(create_backend_app))
    # Bind the socket ourselves: werkzeug's make_server prints two lines of its own and
    # exits when the bind fails; the lab wants one line naming the site and address.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart after a kill
    try:
        listener.bind((host, int(port)))
        listener.listen(128)
    except OSError as exc:  # port in use, address not on any interface...
        listener.close()
        print(
            f"s3store {args.site}: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr
        )
        return 1
    server = make_server(
        host,
        int(port),
        app,
        threaded=True,
        request_handler=MotoRequestHandler,
        fd=listener.fileno(),
    )
    listener.close()  # make_server holds its own duplicate of the descriptor
    bound_host, bound_port = server.server_address[:2]
    print(f"listening on http://{bound_host}:{bound_port}", flush=True)

    stop = threading.Event()
    http = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="s3-http", daemon=True
    )
    worker = threading.Thread(
        target=replicator.loop, args=(stop, args.scan_interval), name="s3-replication", daemon=True
    )
    http.start()
    worker.start()
    log.info(
        "serving S3 on %s:%s, replicating to %s",
        bound_host,
        bound_port,
        f"{peer.name} at {peer.url}" if peer else "nobody",
    )
    signal.sigwait(signals)
    stop.set()
    server.shutdown()  # returns once serve_forever has left its poll loop
    worker.join(timeout=1.5)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
