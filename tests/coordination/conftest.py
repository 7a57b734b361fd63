"""A private 3-node ZooKeeper ensemble on 127.0.9.1-3 for the coordination tests.

Separate from the lab (127.0.1-3.x) so these tests can freeze, kill and expire
ZooKeeper without disturbing anything else, as kazoo's own test harness does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.zkensemble import Ensemble, running_ensemble

IPS = ("127.0.9.1", "127.0.9.2", "127.0.9.3")


@pytest.fixture(scope="session")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensemble]:
    with running_ensemble(tmp_path_factory.mktemp("zk"), IPS) as ens:
        yield ens


@pytest.fixture
def chroot(request: pytest.FixtureRequest) -> str:
    """A fresh root per test, so tests never see each other's state."""
    return f"/test-{request.node.name[:40]}-{time.monotonic_ns()}"


def wait_for(condition, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {within:.0f} s")
        time.sleep(0.05)


def sitectl_root() -> Path:
    return Path(__file__).resolve().parents[2]
