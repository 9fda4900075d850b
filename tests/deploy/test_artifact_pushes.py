"""Pushing artifacts with fake hosts: an unreachable host fails alone, a host that holds the
version already is only asked for its checksums (nothing sent), one whose files differ is
pushed to, and a host answering other checksums than what was sent fails; each result is an
ARTIFACT event naming the artifact, site and host."""

from __future__ import annotations

import asyncio
import hashlib

from shipyard.config.models import Host
from shipyard.config.shared_artifacts import ArtifactContent, SiteArtifact
from shipyard.config.topology import HostRef
from shipyard.deploy.artifacts import Push, push_all
from shipyard.events import Event, EventBus, Phase
from shipyard.executors.fake import FakeExecutor
from shipyard.plan.artifacts import HostTarget

CONTENT = b"ops@example\n"
GOOD = f"644 {hashlib.sha256(CONTENT).hexdigest()}\n"
ARTIFACT = SiteArtifact("notify", "east", "/shared", "0644",
                        (ArtifactContent("list.txt", CONTENT),), "v1")  # fmt: skip


def push(host: str, *, changed: bool) -> Push:
    target = HostTarget("notify", "east", host, "v1", changed, "")
    return Push(target, ARTIFACT, HostRef(host, "east", Host()))


def run(pushes: list[Push], fakes: dict[str, FakeExecutor]) -> tuple[dict[str, str], list[Event]]:
    heard: list[Event] = []
    bus = EventBus()
    bus.subscribe(heard.append)

    async def go() -> dict[str, str]:
        found = await push_all(pushes, lambda ref: fakes[ref.name], lookup=str, limit=2,
                               events=bus)  # fmt: skip
        return {r.host: r.result + (f": {r.reason}" if r.reason else "") for r in found}

    return asyncio.run(go()), heard


def names(fake: FakeExecutor) -> list[str]:
    return [str(getattr(call.command, "name", "")) for call in fake.calls]


def test_each_host_gets_its_own_result_and_an_unreachable_one_fails_alone() -> None:
    fakes = {
        "h1": FakeExecutor("h1", root="/srv/h1"),
        "h2": FakeExecutor("h2", root="/srv/h2", unreachable="cannot connect to h2"),
        "h3": FakeExecutor("h3", root="/srv/h3"),
        "h4": FakeExecutor("h4", root="/srv/h4"),
    }
    fakes["h1"].reply("artifact-push", stdout=GOOD)
    fakes["h3"].reply("artifact-checksums", stdout=GOOD)  # holds it already
    fakes["h4"].reply("artifact-checksums", stdout="- -\n")  # removed by hand
    fakes["h4"].reply("artifact-push", stdout="644 " + "0" * 64 + "\n")  # not what was sent

    results, events = run(
        [push("h1", changed=True), push("h2", changed=True), push("h3", changed=False),
         push("h4", changed=False)], fakes,
    )  # fmt: skip

    assert results == {
        "h1": "success",
        "h2": "failed: cannot connect to h2",
        "h3": "unchanged",
        "h4": "failed: the host reports other content than was sent",
    }
    assert names(fakes["h1"]) == ["artifact-push"]
    assert names(fakes["h3"]) == ["artifact-checksums"]  # nothing sent
    assert names(fakes["h4"]) == ["artifact-checksums", "artifact-push"]
    [sent] = [c.command for c in fakes["h1"].calls]
    assert "/srv/h1/shared/list.txt" in str(getattr(sent, "text", ""))
    assert {(e.phase, e.subject, e.site, e.host, e.result) for e in events} == {
        (Phase.ARTIFACT, "notify", "east", h, r.split(":")[0]) for h, r in results.items()
    }
