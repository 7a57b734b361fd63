"""sitectl's own controllers, one per site, where they live: in that site's network.

`sitectl lab controllers up` starts `sitectl controller run --site SITE` in each site's
namespace against the lab's topology (automatic promotion as the topology says; a copy
with other policies, e.g. automatic promotion on, through `--topology`), serving
/metrics, /status and /healthz on the site's address. They are lab components like the
servers: recorded by PID, stopped by `lab down`, killed with their site by `kill-site`
and brought back by `heal-site`. `lab up` configures them but leaves them stopped
(`wanted` false) until asked, so scenarios that run their own never meet them.

/status needs the lab's bearer token (`token_file`, made by `lab up`, mode 0600): every
controller the lab starts is given it (`command`), and whatever reads an endpoint sends
it (`get`, `status`).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from orchestrator.lab import layout, zookeeper
from orchestrator.lab.credentials import ensure_password
from orchestrator.lab.environment import topology_path
from orchestrator.lab.state import Component, LabState

KIND = "controller"
PORT = 9400


def listen(site: str) -> str:
    return f"{layout.service_ip(site)}:{PORT}"


def token_file(root: Path) -> Path:
    """The lab's bearer token for the controllers' endpoints (under `lab up`'s secrets)."""
    return root / "secrets" / "controller.token"


def command(
    site: str,
    listen_at: str,
    topology: Path,
    token: Path,
    *extra: str,
    lab_root: Path | None = None,
) -> list[str]:
    """`sitectl controller run` for `site` on this interpreter (the venv's, so no PATH is
    assumed), its endpoint behind the bearer token in `token`: what the lab, the
    controller scenarios and the benchmarks start. With `lab_root`, as the lab's
    controller of `site`, with its own ZooKeeper identity."""
    identity = ["--identity", str(identity_file(lab_root, site))] if lab_root is not None else []
    return [
        *(sys.executable, "-m", "orchestrator.cli.controller", "controller", "run"),
        *("--site", site, "--listen", listen_at, "-c", str(topology.absolute())),
        *("--token-file", str(token.absolute()), *identity, *extra),
    ]


def identity_file(lab_root: Path, site: str) -> Path:
    return zookeeper.controller_identity_file(LabState(root=lab_root), site)


def get(address: str, path: str, token: Path, timeout: float = 2.0) -> bytes:
    """GET `path` from the controller serving at `address`, sending the bearer token in
    the file `token` (read, mode checked, at each call)."""
    # Here, not at the top: controller.http brings prometheus_client and the checks, which
    # every `sitectl lab …` would pay for (lifecycle imports this module).
    from orchestrator.controller.http import read_token

    request = urllib.request.Request(
        f"http://{address}{path}", headers={"Authorization": f"Bearer {read_token(token)}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return bytes(answer.read())


def status(address: str, token: Path, timeout: float = 2.0) -> dict[str, Any]:
    """The /status of the controller serving at `address`."""
    return dict(json.loads(get(address, "/status", token, timeout)))


def argv(
    state: LabState, site: str, topology: Path | None = None, hooks: tuple[str, ...] = ()
) -> list[str]:
    """The lab's controller command line, on `topology` (default: the lab's own), with
    `hooks` as its `--hook EVENT=COMMAND` options, and always the lab's token."""
    extra = [arg for hook in hooks for arg in ("--hook", hook)]
    token = token_file(state.root)
    return command(
        site,
        listen(site),
        topology or topology_path(state.root),
        token,
        *extra,
        lab_root=state.root,
    )


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    del programs  # sitectl itself, from this venv
    ensure_password(token_file(state.root))
    comps = []
    for site in layout.SITES:
        home = state.site_dir(site, "controller")
        home.mkdir(parents=True, exist_ok=True)
        comps.append(
            Component(
                name=f"{site}-controller",
                site=site,
                kind=KIND,
                address=listen(site),
                argv=argv(state, site),
                cwd=str(home),
                log=str(home / "controller.log"),
                wanted=False,  # until `lab controllers up`
            )
        )
    return comps


def ready(comp: Component, state: LabState) -> bool:
    """The controller serves /status (it has its ZooKeeper session and its endpoint)."""
    return isinstance(status(comp.address, token_file(state.root)), dict)
