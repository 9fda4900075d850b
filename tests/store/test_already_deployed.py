"""Beginning a deployment re-checks, in its own transaction, that the instance is not already
at the revision: a controller that saw "stale" before a rival finished must not deploy it again.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from shipyard.errors import AlreadyDeployed, ConcurrentDeployment
from shipyard.store import (
    BeganDeployment,
    DeploymentRequest,
    DeploymentStatus,
    Store,
    make_engine,
    open_store,
)

from .builders import begin, config

WORKERS = 16


def deployed(store: Store, deployment_id: str, revision: str = "r1") -> None:
    begin(store, deployment_id, revision=revision, actor="alice")
    store.mark_in_progress(deployment_id)
    store.finish_deployment(
        deployment_id, status=DeploymentStatus.SUCCESS, snapshot=config(revision)
    )


def request(deployment_id: str, revision: str = "r1", *, force: bool = False) -> DeploymentRequest:
    return DeploymentRequest(
        deployment_id, "api@web-1", "api", "web-1", "eu", revision, force=force
    )


def test_an_instance_at_the_revision_is_not_begun_again(store: Store) -> None:
    deployed(store, "d1")
    with pytest.raises(AlreadyDeployed) as refused:
        begin(store, "d2", actor="bob")
    assert refused.value.deployment_id == "d1"
    assert refused.value.actor == "alice"
    assert str(refused.value).startswith(
        "api@web-1 is already at revision r1 (deployment d1 by alice at "
    )
    assert store.deployment("d2") is None
    assert [e.action for e in store.audit()] == ["deploy.begin", "deploy.finish"]


def test_a_batch_answers_already_deployed_for_that_instance_only(store: Store) -> None:
    deployed(store, "d1")
    other = DeploymentRequest("d3", "api@web-2", "api", "web-2", "eu", "r1")
    answers = store.begin_deployments([request("d2"), other], actor="bob", owner_host="c",
                                      owner_pid=os.getpid())  # fmt: skip
    assert isinstance(answers[0], AlreadyDeployed)
    assert answers[0].deployment_id == "d1"
    assert isinstance(answers[1], BeganDeployment)
    assert answers[1].created


def test_another_revision_or_force_begins(store: Store) -> None:
    deployed(store, "d1")
    assert begin(store, "d2", revision="r2").created
    store.finish_deployment("d2", status=DeploymentStatus.FAILED, error="x")
    forced = store.begin_deployments([request("d3", force=True)], actor="bob", owner_host="c",
                                     owner_pid=os.getpid())  # fmt: skip
    assert isinstance(forced[0], BeganDeployment)
    assert forced[0].created


def test_many_controllers_racing_to_deploy_one_revision_deploy_it_once(store_url: str) -> None:
    open_store(store_url).close()
    start = threading.Barrier(WORKERS)

    def controller(n: int) -> str:
        with Store(make_engine(store_url)) as own:
            own.deployment("warm-up")
            start.wait()
            for attempt in range(3):  # the rejected ones try again, as a user would
                made = own.begin_deployments(
                    [request(f"d{n}-{attempt}")],
                    actor=f"u{n}",
                    owner_host="c",
                    owner_pid=os.getpid(),
                )[0]
                if isinstance(made, ConcurrentDeployment):
                    continue
                if isinstance(made, BeganDeployment):
                    own.mark_in_progress(made.deployment.id)
                    own.finish_deployment(made.deployment.id, status=DeploymentStatus.SUCCESS,
                                          snapshot=config("r1"))  # fmt: skip
                    return "success"
                if isinstance(made, AlreadyDeployed):
                    return "unchanged"
            return "rejected"

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(controller, range(WORKERS)))
    assert results.count("success") == 1, results
    with open_store(store_url) as store:
        ok = [d for d in store.deployments() if d.status is DeploymentStatus.SUCCESS]
        assert len(ok) == 1
