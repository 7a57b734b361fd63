"""The lab's component kinds: how to configure each and how to tell it is ready.

How each is probed until ready is `readiness.probe`.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.lab import (
    bind,
    controllers,
    deadman,
    ldap,
    mail,
    netns,
    s3,
    shape,
    sshd,
    volumes,
    widemail,
    zookeeper,
)
from orchestrator.lab.state import Component, LabState

Prepare = Callable[[LabState, dict[str, str]], list[Component]]


def _application(state: LabState, programs: dict[str, str]) -> list[Component]:
    """The mail application of the lab's shape: one mailbox per site, or two (wide)."""
    if shape.recorded(state.resources) == shape.WIDE:
        return widemail.prepare(state, programs)
    return mail.prepare(state, programs)


def prepare_mailstore(state: LabState, site: str) -> None:
    """The mail (and index) roots on the writable site's volumes, for the lab's shape."""
    if shape.recorded(state.resources) == shape.WIDE:
        widemail.prepare_mailstore(state, site)
    else:
        mail.prepare_mailstore(state, site)


# Order matters only for readability of `status`; everything starts concurrently.
PREPARERS: tuple[Prepare, ...] = (
    zookeeper.prepare,
    bind.prepare,
    ldap.prepare,
    s3.prepare,
    volumes.prepare,
    _application,
    sshd.prepare,
    controllers.prepare,
    deadman.prepare,
)

# What runs outside every site's network: the mirror daemon stands in for the arrays'
# own replication link (the lab's WAN cuts reach it through its marks, see volumes).
NO_NETWORK = frozenset({"mirrord"})


def place(state: LabState, comp: Component) -> Component:
    """Put `comp` in its site's network namespace (unless it has no network)."""
    comp.netns = None if comp.kind in NO_NETWORK else netns.namespace(state.root, comp.site)
    return comp
