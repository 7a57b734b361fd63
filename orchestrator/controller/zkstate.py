"""The controllers' own znodes, under `ZkPaths.root`:

controller/members/SITE   ephemeral: a controller of SITE is running (who, where)
controller/vantage/SITE   SITE's controller's own node (ACL: only its identity writes)
  .../report              ephemeral: its latest probe report (JSON, `vantage.Report`)
controller/automatic      the last automatic failover the leader started (intent, JSON)
controller/ack            which automatic failover a person acknowledged (JSON)
controller/evaluation     the leader's latest plan evaluation (JSON, for `sitectl status`)
paused                    `ZkPaths.paused`: present while automatic promotion is paused

Why a node per site under the report: anyone holding sitectl's identity may create and
delete under `controller/vantage`, so the report's own ACL proves nothing (its creator
chose it). `controller/vantage/SITE` is created with an ACL that lets only SITE's
controller identity write or add children, and is trusted only if its ACL never changed
(aversion 0): whoever else makes that node cannot then add a report under it, and a node
made open and closed afterwards shows its ACL change. So a controller host holding
sitectl's identity and its own still cannot vote in another site's name.

None of these is written under the operation lease: they steer automation, they do not
change the world. Operations (and their fencing) stay the engine's; a stale leader that
writes `automatic` only makes the next automatic failover wait longer, never sooner.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NodeExistsError, NoNodeError
from kazoo.security import ACL, Id, Permissions

from orchestrator.controller.decision import AutomaticFailover
from orchestrator.coordination.client import translated
from orchestrator.coordination.paths import ZkPaths
from orchestrator.errors import Failed
from orchestrator.evaluate.findings import Evaluation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """A vantage report as read back, with what tells the leader it is still moving."""

    site: str
    data: dict[str, Any]
    mzxid: int  # ZooKeeper's id of the last write: changes on every publication


@dataclass(frozen=True)
class VantageIdentities:
    """Who may write which site's vantage node (digest ids, "user:base64"); empty
    `expected`: the topology names none (insecure), reports are trusted as read."""

    expected: dict[str, str]
    own: str | None = None  # this controller's identity, to create its site's node
    readers: tuple[str, ...] = ()  # may read every report: sitectl's identity

    def node_acl(self) -> list[ACL]:
        if self.own is None:
            return []
        user, _, digest = self.own.partition(":")
        acl = [ACL(Permissions.ALL, Id("digest", f"{user}:{digest}"))]
        # ADMIN as well: ZooKeeper shows a node's digest ids only to those that hold it
        # ("user:x" to the others), and a reader must see the writer's id in full to
        # tell dc2's real identity from a stranger's `addauth digest ctl-dc2:anything`.
        # ADMIN allows changing the ACL, which shows as a new ACL version: distrusted.
        read_admin = Permissions.READ | Permissions.ADMIN
        acl += [ACL(read_admin, Id("digest", reader)) for reader in self.readers]
        return acl

    def why_untrusted(self, site: str, acl: list[ACL], acl_version: int) -> str | None:
        """Why `site`'s node may not be believed, or None (pure)."""
        if not self.expected:
            return None
        wanted = self.expected.get(site)
        if wanted is None:
            return f"the topology names no controller identity for {site}"
        if acl_version != 0:
            return f"its ACL was changed after it was made (version {acl_version})"
        # ADMIN is left out: using it changes the ACL version, distrusted above.
        changes = Permissions.WRITE | Permissions.CREATE | Permissions.DELETE
        writers = {f"{e.id.scheme}:{e.id.id}" for e in acl if e.perms & changes}
        if writers != {f"digest:{wanted}"}:
            shown = ", ".join(sorted(writers)) or "nobody"
            return f"it may be written by {shown}, not by {site}'s controller identity alone"
        return None


class ControllerState:
    def __init__(
        self,
        client: KazooClient,
        paths: ZkPaths,
        identities: VantageIdentities | None = None,
    ) -> None:
        self._client = client
        self.paths = paths
        self.base = f"{paths.root}/controller"
        self.identities = identities or VantageIdentities({})
        # Reports not believed this time, one sentence each (the daemon logs them).
        self.untrusted: dict[str, str] = {}

    @property
    def members_path(self) -> str:
        return f"{self.base}/members"

    @property
    def vantage_path(self) -> str:
        return f"{self.base}/vantage"

    @property
    def automatic_path(self) -> str:
        return f"{self.base}/automatic"

    @property
    def evaluation_path(self) -> str:
        return f"{self.base}/evaluation"

    @property
    def ack_path(self) -> str:
        return f"{self.base}/ack"

    # Ephemeral nodes: one per live controller of a site.

    def join(self, site: str, info: dict[str, Any]) -> bool:
        """Register this controller; False if another live session holds SITE's node."""
        return self._put_ephemeral(f"{self.members_path}/{site}", info)

    def publish(self, site: str, report: dict[str, Any]) -> bool:
        node = f"{self.vantage_path}/{site}"
        acl = self.identities.node_acl() or None
        with translated(f"preparing {node}"):
            if acl is not None and self._client.exists(node) is not None:
                self._remake_if_untrusted(site, node)
            if self._client.exists(node) is None:
                # Its parents with the default ACL first: `makepath` would give them ours.
                self._client.ensure_path(self.vantage_path)
                with contextlib.suppress(NodeExistsError):
                    self._client.create(node, b"", acl=acl)
        return self._put_ephemeral(f"{node}/report", report, acl)

    def _remake_if_untrusted(self, site: str, node: str) -> None:
        """Our site's node as the leader would distrust it (made by someone else, or its
        ACL changed since): delete it and what it holds, so that ours is made again."""
        try:
            found, stat = self._client.get_acls(node)
        except NoAuthError:
            found, stat = [], None
        why = self.identities.why_untrusted(site, found, stat.aversion if stat else -1)
        if why is None:
            return
        log.warning("%s is not trustworthy (%s): making it again", node, why)
        with contextlib.suppress(NoNodeError):
            for child in self._client.get_children(node):
                with contextlib.suppress(NoNodeError):
                    self._client.delete(f"{node}/{child}")
            self._client.delete(node)

    def _put_ephemeral(self, path: str, data: dict[str, Any], acl: list[ACL] | None = None) -> bool:
        raw = json.dumps(data, sort_keys=True).encode()
        session = self._client.client_id[0] if self._client.client_id else None
        with translated(f"publishing {path}"):
            try:
                self._client.create(path, raw, acl=acl, ephemeral=True, makepath=acl is None)
                return True
            except NodeExistsError:
                pass
            try:
                _, stat = self._client.get(path)
            except NoNodeError:
                return False  # its owner's session just ended: next cycle creates it
            if stat.ephemeralOwner != session:
                # Another controller claims this site, or our previous session has not
                # expired yet: never overwrite someone else's view with ours.
                return False
            self._client.set(path, raw, version=stat.version)
        return True

    def members(self) -> dict[str, dict[str, Any]]:
        return {site: data for site, data, _ in self._children(self.members_path)}

    def running(self, leader: str | None) -> list[dict[str, Any]]:
        """For `sitectl status`: every live controller, whether it leads (`leader` is the
        election's first contender, "SITE user@host:pid"), and its last view of the sites
        (`last_report` on the controller's own clock)."""
        views = {p.site: p.data for p in self.vantage_reports()}
        found = []
        for site, info in self.members().items():
            view = views.get(site, {})
            sites = view.get("sites")
            found.append(
                {
                    "site": site,
                    "identity": str(info.get("identity", site)),
                    "leader": leader is not None and leader == info.get("identity"),
                    "last_report": view.get("probed_at"),  # absent until its first probe
                    "sees": {
                        str(name): v.get("status") if isinstance(v, dict) else None
                        for name, v in (sites.items() if isinstance(sites, dict) else ())
                    },
                }
            )
        return found

    def vantage_reports(self) -> list[Published]:
        """Every site's report that its own controller identity wrote; the others are
        left out, each with its reason in `untrusted`."""
        found, untrusted = [], {}
        with translated(f"reading {self.vantage_path}"):
            try:
                sites = sorted(self._client.get_children(self.vantage_path))
            except NoNodeError:
                sites = []
            for site in sites:
                node = f"{self.vantage_path}/{site}"
                try:
                    if self.identities.expected:
                        acl, stat = self._client.get_acls(node)
                        why = self.identities.why_untrusted(site, acl, stat.aversion)
                        if why is not None:
                            untrusted[site] = why
                            continue
                    raw, stat = self._client.get(f"{node}/report")
                except NoNodeError:
                    continue  # no live report: its session ended, or it never published
                except NoAuthError:
                    untrusted[site] = "sitectl's identity may not read it"
                    continue
                with contextlib.suppress(ValueError):
                    data = json.loads(raw)
                    if isinstance(data, dict):
                        found.append(Published(site, data, stat.mzxid))
        self.untrusted = untrusted
        return found

    def _children(self, path: str) -> list[tuple[str, dict[str, Any], int]]:
        found = []
        with translated(f"reading {path}"):
            try:
                names = self._client.get_children(path)
            except NoNodeError:
                return []
            for name in sorted(names):
                try:
                    raw, stat = self._client.get(f"{path}/{name}")
                except NoNodeError:
                    continue  # its session ended between the listing and the read
                with contextlib.suppress(ValueError):
                    data = json.loads(raw)
                    if isinstance(data, dict):  # anything else is no report at all
                        found.append((name, data, stat.mzxid))
        return found

    # Pause: the reason text at ZkPaths.paused, what `sitectl status` already shows.

    def pause(self, reason: str, who: str) -> str:
        text = f"{reason} — by {who} at {_iso(time.time())}"
        self._upsert(self.paths.paused, text.encode())
        return text

    def unpause(self) -> bool:
        with translated("unpausing"):
            try:
                self._client.delete(self.paths.paused)
            except NoNodeError:
                return False
        return True

    # The last automatic failover and its acknowledgement.

    def record_automatic(self, to_site: str, now: float) -> AutomaticFailover:
        record = AutomaticFailover(f"auto-{_iso(now)}", now, to_site)
        self._upsert(self.automatic_path, json.dumps(record.__dict__).encode())
        return record

    def forget_automatic(self, previous: AutomaticFailover | None) -> None:
        """Undo `record_automatic` when nothing was started after all."""
        if previous is None:
            with translated("forgetting the automatic failover"), contextlib.suppress(NoNodeError):
                self._client.delete(self.automatic_path)
        else:
            self._upsert(self.automatic_path, json.dumps(previous.__dict__).encode())

    def last_automatic(self) -> AutomaticFailover | None:
        try:
            data = self._read_json(self.automatic_path)
            if data is None:
                return None
            at = float(data["at"])
            if not math.isfinite(at):
                raise ValueError(f"at is {at}")
            return AutomaticFailover(str(data["id"]), at, str(data["to_site"]))
        except (KeyError, TypeError, ValueError) as exc:
            # It holds back the next automatic failover (policy.block_period): unreadable,
            # no decision may be taken as if there had been none.
            raise Failed(
                f"{self.automatic_path} is not a record sitectl wrote ({type(exc).__name__}: "
                f"{exc}) — make sure only sitectl may write there (zookeeper.auth), then "
                "delete it or run sitectl acknowledge"
            ) from None

    def acknowledge(self, who: str) -> AutomaticFailover | None:
        """Acknowledge the last automatic failover; None when there is none."""
        last = self.last_automatic()
        if last is None:
            return None
        self._upsert(
            self.ack_path, json.dumps({"id": last.id, "by": who, "at": time.time()}).encode()
        )
        return last

    def acknowledged(self) -> str | None:
        """The id of the acknowledged automatic failover; None when there is none, or
        when the record is unreadable: unacknowledged is the cautious reading."""
        try:
            data = self._read_json(self.ack_path)
        except ValueError:
            return None
        return None if data is None or "id" not in data else str(data["id"])

    # The leader's latest plan evaluation (controller/evaluation.py), for `sitectl status`.

    def record_evaluation(self, result: Evaluation) -> None:
        self._upsert(self.evaluation_path, json.dumps(result.to_dict()).encode())

    def last_evaluation(self) -> Evaluation | None:
        """The latest evaluation a leader recorded; None when there is none, or when the
        record is unreadable (it only informs: nothing is decided on it)."""
        try:
            data = self._read_json(self.evaluation_path)
            return None if data is None else Evaluation.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None

    def _read_json(self, path: str) -> dict[str, Any] | None:
        with translated(f"reading {path}"):
            try:
                raw, _ = self._client.get(path)
            except NoNodeError:
                return None
        data = json.loads(raw)  # ValueError (UnicodeDecodeError too) for the caller
        if not isinstance(data, dict):
            raise ValueError(f"a JSON object was expected, not {type(data).__name__}")
        return data

    def _upsert(self, path: str, raw: bytes) -> None:
        with translated(f"writing {path}"):
            try:
                self._client.create(path, raw, makepath=True)
            except NodeExistsError:
                self._client.set(path, raw)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
