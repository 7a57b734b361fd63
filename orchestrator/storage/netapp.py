"""A thin ONTAP REST client for SnapMirror relationships (production arrays, not the lab).

Honest scope: written from ONTAP's REST reference (9.6+: ``/api/snapmirror/relationships``)
and tested against sample payloads shaped on it, never against a real cluster — there is
none here. What it does:

* `status()`: ``GET /api/snapmirror/relationships/{uuid}`` → `MirrorStatus` (state,
  healthy, ``lag_time``, last transfer end and duration, unhealthy reasons).
* `quiesce()` / `resume()` / `break_()`: ``PATCH`` the relationship's ``state`` to
  ``paused`` / ``snapmirrored`` / ``broken_off``; `update()`: ``POST .../transfers``.
  ONTAP answers 202 with a job: this client does not poll it; the caller's verify step
  (`status()` until the state is reached) is what confirms the change.
* `volume_status()`: the relationship a topology volume names, found on the
  destination's cluster by its ``svm:volume`` path (`OntapDestination`), its ends named
  by site; the mirror health check and the engine's mirror steps read it.
* Not done here: `reverse()` (ONTAP's reverse resync recreates the relationship from
  the other cluster: the netapp playbook does it with the netapp.ontap collection),
  `mount()`/`unmount()` (a host operation, done by the playbooks). They raise `Failed`
  saying so.

Errors: timeouts, connection errors, 429 and 5xx are `Unavailable`; other 4xx are
`Failed` with ONTAP's own ``error.message``.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestrator.adapters.secrets import read_secret
from orchestrator.config.model import NetappVolume, Topology
from orchestrator.errors import Failed, Unavailable
from orchestrator.storage.model import MirrorState, MirrorStatus
from orchestrator.storage.relationship import Op, Relationship, Verdict, decide

# ONTAP states → ours. Sync policies report in_sync/out_of_sync/synchronizing.
_STATES = {
    "snapmirrored": MirrorState.MIRRORED,
    "in_sync": MirrorState.MIRRORED,
    "out_of_sync": MirrorState.MIRRORED,
    "synchronizing": MirrorState.MIRRORED,
    "paused": MirrorState.QUIESCED,
    "broken_off": MirrorState.BROKEN,
}
_TARGET = {
    MirrorState.MIRRORED: "snapmirrored",
    MirrorState.QUIESCED: "paused",
    MirrorState.BROKEN: "broken_off",
}
FIELDS = "uuid,state,healthy,unhealthy_reason,lag_time,source,destination,transfer"

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> float:
    """ISO 8601 duration as ONTAP writes it (``PT8M31S``, ``P1DT2H``) → seconds."""
    match = _DURATION.match(text)
    if not match or text in ("P", "PT"):
        raise Failed(f"ONTAP returned an unreadable duration {text!r}")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return (
        parts.get("days", 0) * 86400
        + parts.get("hours", 0) * 3600
        + parts.get("minutes", 0) * 60
        + parts.get("seconds", 0)
    )


def parse_relationship(record: dict[str, Any], name: str) -> MirrorStatus:
    """One ``snapmirror/relationships`` record → `MirrorStatus`. Pure."""
    ontap_state = record.get("state", "")
    if ontap_state not in _STATES:
        raise Failed(
            f"SnapMirror {name} is {ontap_state or 'in an unknown state'}: "
            "not usable for failover until it is initialised"
        )
    transfer = record.get("transfer") or {}
    end = transfer.get("end_time")
    duration = transfer.get("total_duration")
    reasons = [r.get("message", "") for r in record.get("unhealthy_reason") or []]
    lag = record.get("lag_time")
    return MirrorStatus(
        name=name,
        source=(record.get("source") or {}).get("path", "?"),
        destination=(record.get("destination") or {}).get("path", "?"),
        state=_STATES[ontap_state],
        last_snapshot=record.get("exported_snapshot"),
        last_transfer_at=datetime.fromisoformat(end).timestamp() if end else None,
        last_transfer_duration=parse_duration(duration) if duration else None,
        lag_seconds=parse_duration(lag) if lag else None,
        healthy=bool(record.get("healthy", False)),
        last_error="; ".join(r for r in reasons if r) or None,
    )


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, Any] | None = None


def request_for(op: str, uuid: str) -> Request:
    """The REST call for one operation. Pure, so the mapping is table-tested."""
    base = f"/api/snapmirror/relationships/{uuid}"
    if op == "status":
        return Request("GET", f"{base}?fields={FIELDS}")
    if op == "update":
        return Request("POST", f"{base}/transfers", {})
    targets = {
        "quiesce": MirrorState.QUIESCED,
        "resume": MirrorState.MIRRORED,
        "break": MirrorState.BROKEN,
    }
    if op in targets:
        return Request("PATCH", base, {"state": _TARGET[targets[op]]})
    raise Failed(f"the ONTAP client does not implement {op!r}")


class OntapSnapMirror:
    """One SnapMirror relationship on an ONTAP cluster (the destination's cluster)."""

    def __init__(
        self,
        base_url: str,
        uuid: str,
        username: str,
        password: str,
        name: str = "",
        cafile: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.uuid = uuid
        self.name = name or uuid
        self.timeout = timeout
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._auth = f"Basic {token}"
        self._tls = ssl.create_default_context(cafile=cafile)

    def _call(self, req: Request) -> dict[str, Any]:
        data = None if req.body is None else json.dumps(req.body).encode()
        http = urllib.request.Request(
            self.base_url + req.path,
            data=data,
            method=req.method,
            headers={
                "Authorization": self._auth,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(http, timeout=self.timeout, context=self._tls) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            message = _ontap_error(exc.read()) or exc.reason
            text = f"ONTAP {req.method} {req.path}: HTTP {exc.code}: {message}"
            if exc.code == 429 or exc.code >= 500:
                raise Unavailable(text) from exc
            raise Failed(text) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise Unavailable(f"ONTAP {self.base_url} unreachable: {exc}") from exc
        return json.loads(body) if body else {}

    def status(self) -> MirrorStatus:
        return parse_relationship(self._call(request_for("status", self.uuid)), self.name)

    def update(self) -> MirrorStatus:
        if self._decide(Op.UPDATE) is Verdict.APPLY:
            self._call(request_for("update", self.uuid))
        return self.status()

    def quiesce(self) -> MirrorStatus:
        return self._set(Op.QUIESCE, "quiesce")

    def resume(self) -> MirrorStatus:
        return self._set(Op.RESUME, "resume")

    def break_(self) -> MirrorStatus:
        return self._set(Op.BREAK, "break")

    def _decide(self, op: Op) -> Verdict:
        """The same rules as every driver (`relationship.decide`), on the array's state.

        This matters most for resume: PATCHing a broken-off relationship to
        ``snapmirrored`` is a *resync* on ONTAP, which would discard the writes made at
        the destination since the break.
        """
        current = self.status()
        rel = Relationship(
            name=self.name,
            source=current.source,
            destination=current.destination,
            state=current.state,
            last_snapshot=current.last_snapshot,
        )
        decision = decide(rel, op)
        if decision.verdict is Verdict.REFUSE:
            raise Failed(f"SnapMirror {self.name}: {decision.reason}")
        return decision.verdict

    def _set(self, op: Op, name: str) -> MirrorStatus:
        if self._decide(op) is Verdict.APPLY:
            self._call(request_for(name, self.uuid))
        return self.status()

    def reverse(self, new_source: str | None = None) -> MirrorStatus:
        raise Failed(
            "reverse resync is not done by the ONTAP client: the netapp playbook "
            "(orchestrator/playbooks/tasks/netapp.yml) does it with the netapp.ontap collection"
        )

    def mount(self, site: str) -> None:
        raise Failed("mounting is a host operation: use the mount playbook, not the array")

    def unmount(self, site: str) -> None:
        raise Failed("unmounting is a host operation: use the playbook, not the array")


def _ontap_error(body: bytes) -> str | None:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return None


# --- Relationships named by the topology --------------------------------------------
# The topology names each site's copy (cluster, SVM, volume), not relationship UUIDs:
# the relationship is found on the destination's cluster by its destination path, the
# way the playbook (orchestrator/playbooks/tasks/netapp.yml) finds it.


class RelationshipNotFound(Failed):
    """The cluster holds no SnapMirror relationship into that destination path."""


def request_by_destination(path: str) -> Request:
    """The relationship whose destination is ``svm:volume``, with the fields we parse."""
    query = urllib.parse.quote(path, safe="")
    return Request("GET", f"/api/snapmirror/relationships?destination.path={query}&fields={FIELDS}")


class OntapDestination(OntapSnapMirror):
    """The relationship into one destination path; its UUID is read on every `status()`
    (which every operation calls first), so a recreated relationship is followed."""

    def __init__(
        self,
        base_url: str,
        destination_path: str,
        username: str,
        password: str,
        name: str = "",
        cafile: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(
            base_url, "", username, password, name or destination_path, cafile, timeout
        )
        self.destination_path = destination_path

    def status(self) -> MirrorStatus:
        records = self._call(request_by_destination(self.destination_path)).get("records") or []
        where = f"ONTAP {self.base_url}"
        if not records:
            raise RelationshipNotFound(
                f"{where} has no SnapMirror relationship into {self.destination_path}"
            )
        if len(records) > 1 or not records[0].get("uuid"):
            raise Failed(
                f"{where} lists {len(records)} SnapMirror relationships into "
                f"{self.destination_path}, expected exactly one with a uuid"
            )
        self.uuid = str(records[0]["uuid"])
        return parse_relationship(records[0], self.name)


def cluster_url(cluster: str) -> str:
    """The REST base of a cluster management address (always HTTPS: Basic auth)."""
    return cluster.rstrip("/") if cluster.startswith("https://") else f"https://{cluster}"


def for_site(topo: Topology, volume: NetappVolume, site: str, timeout: float) -> OntapDestination:
    """The relationship into `site`'s copy of `volume`, on `site`'s cluster."""
    settings = volume.sites[site]
    secret = read_secret(settings.credentials, topo.base_dir)
    user, colon, password = secret.reveal().partition(":")
    if not colon or not user:
        raise Failed(
            f"volume {volume.name}: the ONTAP credentials of {site} ({secret.source}) are not "
            "'user:password' — store them in that form"
        )
    return OntapDestination(
        cluster_url(settings.cluster),
        f"{settings.svm}:{settings.volume}",
        user,
        password,
        name=volume.name,
        timeout=timeout,
    )


def in_site_terms(status: MirrorStatus, volume: NetappVolume) -> MirrorStatus:
    """ONTAP names the ends ``svm:volume``; the rest of sitectl names sites."""
    sites = {f"{s.svm}:{s.volume}": name for name, s in volume.sites.items()}
    return replace(
        status,
        source=sites.get(status.source, status.source),
        destination=sites.get(status.destination, status.destination),
    )


def volume_status(
    topo: Topology,
    volume: NetappVolume,
    *,
    destination: str,
    timeout: float,
    either_way: bool = False,
) -> MirrorStatus:
    """The relationship into `destination`'s copy, with its ends named by site.

    `either_way`: when `destination`'s cluster holds no relationship into it, read the
    one into the other site's copy (the live direction after a reverse resync). Only a
    missing relationship moves on: a cluster that does not answer is the answer.
    """
    order = [destination, *(s for s in volume.sites if s != destination and either_way)]
    missing: list[str] = []
    for site in order:
        try:
            return in_site_terms(for_site(topo, volume, site, timeout).status(), volume)
        except RelationshipNotFound as exc:
            missing.append(str(exc))
    raise RelationshipNotFound("; ".join(missing))
