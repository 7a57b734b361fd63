"""A leadership term's fencing epoch comes from the operation lease's counter, against a
real ZooKeeper ensemble: leaders and operations are ordered on one sequence (a later
leader holds an epoch above every earlier operation's, and the other way round), and a
leader elected while an operation holds the lease waits for it rather than move the
epoch under it."""

from __future__ import annotations

import logging

import pytest

from orchestrator.controller.leadership import Leadership
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.paths import ZkPaths
from tests.zkensemble import Ensemble

pytestmark = pytest.mark.lab


def test_leaders_and_operations_share_one_epoch_sequence(ensemble: Ensemble, chroot: str) -> None:
    paths = ZkPaths.for_cluster(chroot, "terms")
    clients = [ensemble.client() for _ in range(3)]
    try:
        operation = Lease(clients[0], paths, "operation 1")
        first_operation = operation.acquire()
        operation.release()

        leader = Leadership(clients[1], paths, "controller dc1")
        assert leader.contend(timeout=10)
        assert leader.epoch is not None and leader.epoch > first_operation
        assert leader.contend(timeout=10)  # a later cycle of the same term keeps it
        term = leader.epoch

        later = Lease(clients[0], paths, "operation 2")
        second_operation = later.acquire()
        later.release()
        assert second_operation > term
        assert leader.epoch == term  # an operation does not end the term

        successor = Leadership(clients[2], paths, "controller dc2")
        assert not successor.contend(timeout=0.5)
        assert successor.epoch is None  # a follower holds no epoch
        clients[1].stop()  # the leader's session ends, and its election node with it
        assert successor.contend(timeout=10)
        assert successor.epoch is not None and successor.epoch > second_operation
    finally:
        for client in clients:
            client.stop()
            client.close()


def test_a_leader_elected_during_an_operation_waits_for_its_lease(
    ensemble: Ensemble, chroot: str, caplog: pytest.LogCaptureFixture
) -> None:
    paths = ZkPaths.for_cluster(chroot, "terms")
    clients = [ensemble.client() for _ in range(2)]
    try:
        operation = Lease(clients[0], paths, "sitectl failover by alice")
        running = operation.acquire()
        leader = Leadership(clients[1], paths, "controller dc2")
        with caplog.at_level(logging.INFO, logger="orchestrator.controller.leadership"):
            assert leader.contend(timeout=10)
            assert leader.epoch is None
            assert leader.contend(timeout=10) and leader.epoch is None
        waits = [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith("this term's fencing epoch waits")
        ]
        assert waits == [
            "this term's fencing epoch waits for the operation lease, held by sitectl "
            "failover by alice: no canary is written until then"
        ]  # said once, not every cycle
        operation.ensure()  # the running operation's epoch did not move
        assert operation.epoch == running
        operation.release()
        assert leader.contend(timeout=10)
        assert leader.epoch is not None and leader.epoch > running
    finally:
        for client in clients:
            client.stop()
            client.close()
