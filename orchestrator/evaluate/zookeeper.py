"""sitectl's ZooKeeper identity can write the nodes an operation writes, proved without
writing.

A `sync` of the cluster's root goes through the ensemble's leader, so it answers only
where a quorum is. Then each node an operation changes (its root, the lease's lock, the
epoch, the active site, the ticket, the operation records) is read with its ACL, and the
ACL must grant sitectl's own digest identity (`zookeeper.auth`, as ZooKeeper names it:
user:base64(sha1)) the permissions the operation uses there. Chosen over a
version-checked write that must fail (which proves the same but logs an error
transaction): nothing at all is written. A wrong password in `zookeeper.auth` shows as
an identity the ACLs do not name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.config.model import Topology
from orchestrator.coordination.paths import ZkPaths
from orchestrator.errors import SitectlError
from orchestrator.evaluate.findings import Finding, ok, problem

CHECK = "zookeeper"
CONNECT_TIMEOUT_S = 5.0
READ, WRITE, CREATE, DELETE, ADMIN = 1, 2, 4, 8, 16
PERM_NAMES = {READ: "read", WRITE: "write", CREATE: "create", DELETE: "delete", ADMIN: "admin"}


def nodes(paths: ZkPaths) -> list[tuple[str, int]]:
    """The nodes an operation writes, with the permissions it needs on each."""
    children = READ | CREATE | DELETE
    return [
        (paths.root, children),  # `current` is made and removed under it
        (paths.lock, children),
        (paths.epoch, READ | WRITE),
        (paths.active_site, READ | WRITE),
        (paths.ticket, READ | WRITE),
        (paths.operations, children | WRITE),
    ]


def granted(acls: Sequence[tuple[int, str, str]], my_id: str | None) -> int:
    """The permissions `acls` ((perms, scheme, id) each) grant the identity `my_id`
    (None: no identity, only what the world may do) (pure)."""
    perms = 0
    for mask, scheme, ident in acls:
        if (scheme, ident) == ("world", "anyone") or (
            my_id is not None and (scheme, ident) == ("digest", my_id)
        ):
            perms |= mask
    return perms


def judge_node(
    path: str, acls: Sequence[tuple[int, str, str]] | None, my_id: str | None, needed: int
) -> Finding:
    """One node's finding (pure). `acls` None: the node does not exist yet."""
    if acls is None:
        return ok(CHECK, path, "not made yet: the first operation makes it")
    missing = needed & ~granted(acls, my_id)
    if not missing:
        return ok(CHECK, path, "its ACL lets sitectl's identity do what an operation does there")
    names = ", ".join(name for bit, name in PERM_NAMES.items() if missing & bit)
    who = my_id.split(":")[0] if my_id else "an anonymous session"
    return problem(
        CHECK,
        path,
        f"its ACL does not grant {who} {names} — is zookeeper.auth the identity that made "
        "it (a changed password is another identity)?",
    )


def _acl_tuples(acls: Sequence[Any]) -> list[tuple[int, str, str]]:
    return [(int(a.perms), str(a.id.scheme), str(a.id.id)) for a in acls]


def check_zookeeper(topo: Topology) -> list[Finding]:
    from kazoo.exceptions import NoNodeError

    from orchestrator.coordination.client import connect, sitectl_id, translated

    paths = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster)
    try:
        my_id = sitectl_id(topo)
        client = connect(topo, timeout=CONNECT_TIMEOUT_S)
    except (SitectlError, OSError) as exc:
        return [problem(CHECK, topo.zookeeper.connect_string(), f"cannot connect: {exc}")]
    try:
        findings = []
        with translated("sync through the ZooKeeper leader"):
            client.sync("/")
        for path, needed in nodes(paths):
            with translated(f"ACL of {path}"):
                try:
                    acls: list[tuple[int, str, str]] | None = _acl_tuples(client.get_acls(path)[0])
                except NoNodeError:
                    acls = None
            findings.append(judge_node(path, acls, my_id, needed))
        return findings
    except SitectlError as exc:
        return [problem(CHECK, paths.root, str(exc))]
    finally:
        client.stop()
        client.close()
