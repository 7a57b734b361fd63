"""The controllers' own znodes, under `ZkPaths.root`:

controller/members/SITE   ephemeral: a controller of SITE is running (who, where)
controller/vantage/SITE   ephemeral: its latest probe report (JSON, `vantage.Report`)
controller/automatic      the last automatic failover the leader started (intent, JSON)
controller/ack            which automatic failover a person acknowledged (JSON)
paused                    `ZkPaths.paused`: present while automatic promotion is paused

None of these is written under the operation lease: they steer automation, they do not
change the world. Operations (and their fencing) stay the engine's; a stale leader that
writes `automatic` only makes the next automatic failover wait longer, never sooner.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from orchestrator.controller.decision import AutomaticFailover
from orchestrator.coordination.client import translated
from orchestrator.coordination.paths import ZkPaths
from orchestrator.errors import Failed


@dataclass(frozen=True)
class Published:
    """A vantage report as read back, with what tells the leader it is still moving."""

    site: str
    data: dict[str, Any]
    mzxid: int  # ZooKeeper's id of the last write: changes on every publication


class ControllerState:
    def __init__(self, client: KazooClient, paths: ZkPaths) -> None:
        self._client = client
        self.paths = paths
        self.base = f"{paths.root}/controller"

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
    def ack_path(self) -> str:
        return f"{self.base}/ack"

    # Ephemeral nodes: one per live controller of a site.

    def join(self, site: str, info: dict[str, Any]) -> bool:
        """Register this controller; False if another live session holds SITE's node."""
        return self._put_ephemeral(f"{self.members_path}/{site}", info)

    def publish(self, site: str, report: dict[str, Any]) -> bool:
        return self._put_ephemeral(f"{self.vantage_path}/{site}", report)

    def _put_ephemeral(self, path: str, data: dict[str, Any]) -> bool:
        raw = json.dumps(data, sort_keys=True).encode()
        session = self._client.client_id[0] if self._client.client_id else None
        with translated(f"publishing {path}"):
            try:
                self._client.create(path, raw, ephemeral=True, makepath=True)
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
        return [
            Published(site, data, mzxid) for site, data, mzxid in self._children(self.vantage_path)
        ]

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
