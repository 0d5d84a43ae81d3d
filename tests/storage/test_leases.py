"""Connection leases: due connections are claimed by one worker at a time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from connector.storage import Store
from tests.support.databases import Database

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=10)


def _seed(store: Store, count: int) -> list[int]:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        ids = [
            uow.connections.add(org.id, "xero", f"t{i}", f"c{i}", next_run_at=NOW - timedelta(minutes=1)).id
            for i in range(count)
        ]
        uow.commit()
    return ids


def test_claim_due_leases_and_release_reschedules(store: Store) -> None:
    ids = _seed(store, 3)
    with store.unit_of_work() as uow:
        uow.connections.by_id(ids[2]).next_run_at = NOW + timedelta(hours=1)  # type: ignore[union-attr]
        uow.connections.by_id(ids[1]).status = "needs_reauth"  # type: ignore[union-attr]
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.connections.claim_due("w1", NOW, LEASE, 10) == [ids[0]]
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.connections.claim_due("w2", NOW, LEASE, 10) == []  # held by w1
        assert not uow.connections.release(ids[0], "w2", NOW)  # not w2's lease
        assert uow.connections.release(ids[0], "w1", NOW + timedelta(hours=1))
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.connections.claim_due("w2", NOW + timedelta(minutes=30), LEASE, 10) == []
        assert uow.connections.claim_due("w2", NOW + timedelta(hours=2), LEASE, 10) == [ids[0], ids[2]]
        uow.commit()


def test_expired_lease_can_be_taken_over(store: Store) -> None:
    [cid] = _seed(store, 1)
    with store.unit_of_work() as uow:
        assert uow.connections.claim_due("w1", NOW, LEASE, 10) == [cid]
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.connections.claim_due("w2", NOW + LEASE + timedelta(seconds=1), LEASE, 10) == [cid]
        uow.commit()


def test_two_concurrent_claimers_never_share_a_connection_on_postgresql(postgres_database: Database) -> None:
    store = postgres_database.store(pool_size=4)
    try:
        store.upgrade()
        ids = _seed(store, 40)
        barrier = threading.Barrier(2)
        claimed: dict[str, list[int]] = {}

        def claimer(name: str) -> None:
            with store.unit_of_work() as uow:
                barrier.wait()
                got = uow.connections.claim_due(name, NOW, LEASE, 25)
                barrier.wait()  # both hold their transactions open at the same time
                uow.commit()
            claimed[name] = got

        threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        first, second = set(claimed["w0"]), set(claimed["w1"])
        assert first.isdisjoint(second)
        assert first | second == set(ids)  # 25 + 15: SKIP LOCKED let the second take the rest at once
        assert sorted([len(first), len(second)]) == [15, 25]

        # One row, two claimers in the same instant: exactly one wins.
        with store.unit_of_work() as uow:
            for cid in ids:
                uow.connections.release(cid, "w0", NOW + timedelta(days=1))
                uow.connections.release(cid, "w1", NOW + timedelta(days=1))
            uow.connections.by_id(ids[0]).next_run_at = NOW  # type: ignore[union-attr]
            uow.commit()
        claimed.clear()
        threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(claimed["w0"] + claimed["w1"]) == [ids[0]]
    finally:
        store.dispose()
