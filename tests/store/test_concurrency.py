"""The database holds the concurrency rule across connections, as it would across machines.

Every worker opens its own engine, as a separate Shipyard process would; a barrier makes them ask
at the same instant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from shipyard.errors import ConcurrentDeployment
from shipyard.store import BeganDeployment, Store, make_engine, open_store

from .builders import begin

WORKERS = 20


def race(store_url: str, request: Callable[[Store, int], BeganDeployment]) -> list[object]:
    """Run `request(store, n)` for n in 0..WORKERS-1, all at once, each on its own engine."""
    start = threading.Barrier(WORKERS)

    def worker(n: int) -> object:
        with Store(make_engine(store_url)) as own:
            own.deployment("warm-up")  # connect before the barrier, so the race is the insert
            start.wait()
            try:
                return request(own, n)
            except ConcurrentDeployment as rejected:
                return rejected

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(worker, range(WORKERS)))


def test_twenty_requests_for_one_instance_accept_exactly_one(store_url: str) -> None:
    open_store(store_url).close()
    outcomes = race(store_url, lambda own, n: begin(own, f"d{n}", actor=f"user{n}"))
    accepted = [o for o in outcomes if isinstance(o, BeganDeployment)]
    rejected = [o for o in outcomes if isinstance(o, ConcurrentDeployment)]
    assert len(accepted) == 1
    assert len(rejected) == WORKERS - 1
    holder = accepted[0].deployment
    assert {(r.deployment_id, r.actor) for r in rejected} == {(holder.id, holder.actor)}
    with open_store(store_url) as store:
        assert [d.id for d in store.active_deployments()] == [holder.id]
        assert [e.target for e in store.audit()] == ["api@web-1"]


def test_twenty_instances_deploy_in_parallel(store_url: str) -> None:
    open_store(store_url).close()
    outcomes = race(store_url, lambda own, n: begin(own, f"d{n}", f"api@web-{n}"))
    assert all(isinstance(o, BeganDeployment) and o.created for o in outcomes)
    with open_store(store_url) as store:
        assert len(store.active_deployments()) == WORKERS


def test_one_deployment_id_sent_by_many_at_once_is_applied_once(store_url: str) -> None:
    open_store(store_url).close()
    outcomes = race(store_url, lambda own, n: begin(own, "same-id"))
    began = [o for o in outcomes if isinstance(o, BeganDeployment)]
    assert len(began) == WORKERS  # nobody is refused: they all asked for the same deployment
    assert sum(b.created for b in began) == 1
    assert {b.deployment.id for b in began} == {"same-id"}
