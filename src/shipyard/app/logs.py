"""Use cases that read what happened: a deployment's log (host output per step) and the event
stream, both of which another process can follow while a rollout runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shipyard.app.session import Session
from shipyard.errors import UsageError
from shipyard.events import Event, Phase

if TYPE_CHECKING:
    from shipyard.store.notices import EventNotices

POLL_SECONDS = 0.5
PAGE = 500

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class StepOutput:
    """The (bounded, masked) output of one step of a deployment on its host."""

    seq: int
    step: str
    host: str
    at: datetime
    exit_status: int | None
    output: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "step": self.step,
            "host": self.host,
            "at": self.at.isoformat(),
            "exit_status": self.exit_status,
            "output": self.output,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> StepOutput:
        status = value.get("exit_status")
        return cls(
            seq=int(value["seq"]),
            step=str(value["step"]),
            host=str(value["host"]),
            at=datetime.fromisoformat(value["at"]),
            exit_status=None if status is None else int(status),
            output=str(value.get("output") or ""),
        )


@dataclass(frozen=True)
class DeploymentLog:
    """A deployment, where it is, and the output of each step that ran so far."""

    deployment_id: str
    instance: str
    revision: str
    status: str
    error: str | None
    steps: tuple[StepOutput, ...]

    @property
    def over(self) -> bool:
        return self.status not in ("pending", "in_progress")

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment_id,
            "instance": self.instance,
            "revision": self.revision,
            "status": self.status,
            "error": self.error,
            "steps": [s.to_json() for s in self.steps],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DeploymentLog:
        return cls(
            deployment_id=str(value["deployment"]),
            instance=str(value["instance"]),
            revision=str(value["revision"]),
            status=str(value["status"]),
            error=value.get("error"),
            steps=tuple(StepOutput.from_json(s) for s in value.get("steps", [])),
        )


def deployment_log(session: Session, deployment_id: str) -> DeploymentLog:
    """The deployment's record and its steps' output, in the order they ran."""
    store = session.store
    found = store.deployment(deployment_id)
    if found is None:
        raise UsageError(f'no deployment "{deployment_id}"')
    masker = session.masker()
    steps = tuple(
        StepOutput(s.seq, s.step, s.host, s.at, s.exit_status, masker.text(s.output))
        for s in store.step_logs(deployment_id)
    )
    return DeploymentLog(
        found.id,
        found.instance,
        found.revision,
        found.status.value,
        masker.text(found.error) if found.error else None,
        steps,
    )


def follow_log(
    session: Session,
    deployment_id: str,
    *,
    poll: float = POLL_SECONDS,
    sleep: Sleep = time.sleep,
) -> Iterator[StepOutput | DeploymentLog]:
    """Each step's output as it is stored, then the log once the deployment is over (a
    deployment run by another process is followed by reading the store again)."""
    seen = 0
    while True:
        log = deployment_log(session, deployment_id)
        yield from log.steps[seen:]
        seen = len(log.steps)
        if log.over:
            yield log
            return
        sleep(poll)


def events(
    session: Session,
    *,
    after_id: int = 0,
    rollout_id: str | None = None,
    instance: str | None = None,
    site: str | None = None,
    phase: Phase | None = None,
    follow: bool = False,
    limit: int | None = None,
    poll: float = POLL_SECONDS,
    sleep: Sleep = time.sleep,
) -> Iterator[Event]:
    """Stored events after `after_id` (of one rollout, instance, site or phase), oldest first. With
    `follow`, keep reading as more are stored: until the rollout finishes when one is named,
    else until the caller stops. At most `limit` events when given."""
    store = session.store
    after = after_id
    told = 0
    while True:
        page = store.events(
            after_id=after, limit=PAGE, rollout_id=rollout_id, instance=instance, site=site,
            phase=phase,
        )  # fmt: skip
        for event in page:
            after = event.id
            yield event
            told += 1
            if limit is not None and told >= limit:
                return
            if follow and rollout_id is not None and event.final:
                return
        if len(page) == PAGE:
            continue
        if not follow:
            return
        sleep(poll)


def last_event_id(session: Session) -> int:
    """The newest stored event's id (0 when there is none): where a view of only what happens
    from now on starts."""
    return session.store.last_event_id()


def event_notices(session: Session) -> EventNotices | None:
    """What tells this process that another one stored events (PostgreSQL's LISTEN/NOTIFY);
    None where readers can only poll (SQLite)."""
    return session.store.event_notices()
