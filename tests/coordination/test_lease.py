"""The operation lease against a real 3-node ZooKeeper: one holder, a monotonic fencing
epoch, stale writers refused by ZooKeeper itself, and no side effect while suspended."""

from __future__ import annotations

import signal

import pytest
from kazoo.client import KazooState
from kazoo.recipe.lock import Lock
from kazoo.security import make_acl

from orchestrator.coordination.lease import Lease, take_term_epoch
from orchestrator.coordination.paths import ZkPaths
from orchestrator.errors import Conflict, Failed, LeaseLost, Locked
from tests.coordination.conftest import IPS, wait_for

pytestmark = pytest.mark.lab


def test_one_holder_at_a_time_and_the_second_is_told_who(ensemble, chroot) -> None:
    paths = ZkPaths(chroot)
    a, b = ensemble.client(), ensemble.client()
    try:
        first = Lease(a, paths, "alice@ops1:100")
        first.acquire()
        with pytest.raises(Locked) as locked:
            Lease(b, paths, "bob@ops2:200").acquire()
        assert locked.value.holder == "alice@ops1:100"
        assert str(locked.value) == "another operation holds the lock: alice@ops1:100"
    finally:
        a.stop(), b.stop()


def test_every_acquisition_bumps_the_epoch(ensemble, chroot) -> None:
    paths = ZkPaths(chroot)
    client = ensemble.client()
    try:
        epochs = []
        for n in range(3):
            lease = Lease(client, paths, f"op{n}")
            epochs.append(lease.acquire())
            lease.release()
        assert epochs == sorted(epochs) and len(set(epochs)) == 3
    finally:
        client.stop()


def test_a_stale_leader_is_refused_by_zookeeper_itself(ensemble, chroot) -> None:
    paths = ZkPaths(chroot)
    old_client, new_client = ensemble.client(), ensemble.client()
    try:
        old = Lease(old_client, paths, "old-leader")
        old.acquire()
        old.create(f"{chroot}/record", b"v1")
        # The old leader freezes; its session expires; a successor takes over.
        ensemble.expire(old_client)
        new = Lease(new_client, paths, "new-leader")
        wait_for(lambda: _try_acquire(new), "successor takes the lease")
        assert new.epoch > old.epoch

        # Locally the old leader knows it lost the session ...
        with pytest.raises(LeaseLost, match="session expired"):
            old.set(f"{chroot}/record", b"stale")
        # ... and even a writer that skipped every local check, on the fresh session
        # kazoo opens after an expiry, is refused by ZooKeeper itself.
        wait_for(lambda: old_client.state == KazooState.CONNECTED, "old client reconnects")
        old.ensure = lambda: None  # type: ignore[method-assign]
        with pytest.raises(LeaseLost, match=f"the fencing epoch is no longer {old.epoch}"):
            old.set(f"{chroot}/record", b"stale")
        assert new_client.get(f"{chroot}/record")[0] == b"v1"
        new.set(f"{chroot}/record", b"v2")
        assert new_client.get(f"{chroot}/record")[0] == b"v2"
    finally:
        old_client.stop(), new_client.stop()


def test_a_stale_write_is_refused_between_the_successors_lock_and_its_epoch(
    ensemble, chroot
) -> None:
    """The successor holds the lock but has not bumped the epoch yet: the epoch alone would
    let the old leader's write in; its lock node, gone with its session, keeps it out."""
    paths = ZkPaths(chroot)
    old_client, new_client = ensemble.client(), ensemble.client()
    try:
        old = Lease(old_client, paths, "old-leader")
        old.acquire()
        old.create(f"{chroot}/record", b"v1")
        expired_session = old_client.client_id[0]
        ensemble.expire(old_client)
        # On a new session: right after the expiry it may still read CONNECTED on the old
        # one, and a write sent then meets the expiry, not the check under test.
        wait_for(
            lambda: (
                old_client.state == KazooState.CONNECTED
                and old_client.client_id[0] != expired_session
            ),
            "old client reconnects on a new session",
        )
        successor = Lock(new_client, paths.lock, "new-leader")  # the lock, not yet the epoch
        wait_for(lambda: successor.acquire(blocking=False), "successor takes the lock")
        assert new_client.exists(paths.epoch).version == old.epoch

        old.ensure = lambda: None  # type: ignore[method-assign]  # a writer skipping its checks
        with pytest.raises(LeaseLost, match="our lock node is gone"):
            old.set(f"{chroot}/record", b"stale")
        with pytest.raises(LeaseLost, match="our lock node is gone"):
            old.create(f"{chroot}/other", b"stale")
        assert new_client.get(f"{chroot}/record")[0] == b"v1"
        assert new_client.exists(f"{chroot}/other") is None
    finally:
        old_client.stop(), new_client.stop()


def test_a_failed_epoch_bump_gives_the_lock_back(ensemble, chroot) -> None:
    """Taking the lock worked, bumping the epoch did not: the error leaves `acquire` with
    the lock released, so nobody waits for a lease nobody holds."""
    paths = ZkPaths(chroot)
    client, other = ensemble.client(), ensemble.client()
    try:
        other.ensure_path(paths.root)
        # An epoch this client may read but not write: the bump is refused.
        other.create(paths.epoch, b"x", acl=[make_acl("world", "anyone", read=True)])
        lease = Lease(client, paths, "unlucky")
        with pytest.raises(Failed, match="ZooKeeper refused our credentials"):
            lease.acquire()
        assert not lease.held
        assert Lock(other, paths.lock).contenders() == []
    finally:
        client.stop(), other.stop()


def _try_acquire(lease: Lease) -> bool:
    try:
        lease.acquire()
    except Locked:
        return False
    return True


def test_compare_and_set_on_the_record(ensemble, chroot) -> None:
    client = ensemble.client()
    try:
        lease = Lease(client, ZkPaths(chroot), "op")
        lease.acquire()
        lease.create(f"{chroot}/r", b"a")
        version = lease.set(f"{chroot}/r", b"b", 0)
        with pytest.raises(Conflict, match="changed since it was read"):
            lease.set(f"{chroot}/r", b"c", 0)
        assert lease.set(f"{chroot}/r", b"c", version) == version + 1
    finally:
        client.stop()


def test_no_side_effect_while_suspended_and_reverified_after(ensemble, chroot) -> None:
    client = ensemble.client(timeout=10.0)
    states: list[str] = []
    client.add_listener(states.append)
    lease = Lease(client, ZkPaths(chroot), "op", reconnect_wait=1.0)
    lease.acquire()
    stopped = [ip for ip in IPS][:2]
    try:
        for ip in stopped:  # no quorum: the client's server drops it
            ensemble.signal(ip, signal.SIGSTOP)
        wait_for(lambda: KazooState.SUSPENDED in states, "client suspended", within=30)
        with pytest.raises(LeaseLost, match="ZooKeeper unreachable for 1 s"):
            lease.ensure()
    finally:
        for ip in stopped:
            ensemble.signal(ip, signal.SIGCONT)
    wait_for(lambda: client.state == KazooState.CONNECTED, "client reconnected", within=30)
    lease.ensure()  # same session, same lock node, same epoch: we still lead
    lease.create(f"{chroot}/after", b"ok")
    client.stop()


def test_session_expiry_ends_the_lease(ensemble, chroot) -> None:
    client = ensemble.client()
    lease = Lease(client, ZkPaths(chroot), "op")
    lease.acquire()
    ensemble.expire(client)
    wait_for(lambda: not lease.held, "lease notices the expiry")
    with pytest.raises(LeaseLost, match="session expired"):
        lease.ensure()
    client.stop()


def test_a_waiting_acquirer_gets_the_lease_when_the_holder_dies(ensemble, chroot) -> None:
    paths = ZkPaths(chroot)
    dead, waiter = ensemble.client(timeout=4.0), ensemble.client()
    try:
        Lease(dead, paths, "killed-holder").acquire()
        with pytest.raises(Locked, match="killed-holder"):
            Lease(waiter, paths, "resumer").acquire()
        ensemble.expire(dead)  # what a SIGKILLed holder's session does after its timeout
        lease = Lease(waiter, paths, "resumer")
        assert lease.acquire(wait=15.0) >= 1
        assert lease.held
    finally:
        dead.stop(), waiter.stop()


def _no_delete_under(client, path: str) -> None:
    """Children of `path` may be made and read, never deleted: a release fails."""
    client.ensure_path(path)
    client.set_acls(path, [make_acl("world", "anyone", read=True, create=True)])


def test_a_failed_release_still_stops_listening_to_the_session(ensemble, chroot) -> None:
    """A release that fails (ZooKeeper refuses or drops the delete; the node then dies
    with the session) must not leave the lease's session listener behind: a controller
    takes and gives back a lease every leadership term, for months."""
    paths = ZkPaths(chroot)
    # A session that outlives a loaded machine's pauses: were it to expire in between,
    # the lock node would die with it and the delete find nothing to refuse.
    client = ensemble.client(timeout=15.0)
    try:
        listeners = len(client.state_listeners)
        lease = Lease(client, paths, "op")
        lease.acquire()
        assert len(client.state_listeners) == listeners + 1
        _no_delete_under(client, paths.lock)
        with pytest.raises(Failed, match="releasing the operation lease"):
            lease.release()
        assert len(client.state_listeners) == listeners
    finally:
        client.stop()
        client.close()


def test_a_terms_epoch_whose_release_fails_leaves_no_listener(ensemble, chroot) -> None:
    paths = ZkPaths(chroot)
    client = ensemble.client(timeout=15.0)  # as above
    try:
        _no_delete_under(client, paths.lock)
        listeners = len(client.state_listeners)
        with pytest.raises(Failed, match="releasing the operation lease"):
            take_term_epoch(client, paths, "controller dc1")
        assert len(client.state_listeners) == listeners
    finally:
        client.stop()
        client.close()
