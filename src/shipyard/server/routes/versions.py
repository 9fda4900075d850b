"""Config versions: list, read, diff; publish by uploading a project or reloading the served
directory (each validated first, refused with every problem if invalid)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import versiondiff, versions
from shipyard.server.errors import ApiError
from shipyard.server.routes.deps import Caller, CallerSession, State

router = APIRouter(tags=["versions"])

VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="A config version's number.")]


class UploadRequest(BaseModel):
    """A whole project: every file by its path relative to the project root, base64."""

    model_config = ConfigDict(extra="forbid")

    files: dict[str, str] = Field(description="path -> content, base64 (standard alphabet).")
    message: str = Field("", max_length=2000)


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field("", max_length=2000)


class Version(BaseModel):
    id: int
    hash: str
    source: str
    message: str
    published_by: str
    published_at: str
    files: dict[str, str]


class VersionPage(BaseModel):
    versions: list[Version]
    next_before: int | None
    serving: int | None


class Published(BaseModel):
    version: Version
    created: bool
    serving: int


class FileChange(BaseModel):
    path: str
    change: str
    unified: str | None


class InstanceChange(BaseModel):
    instance: str
    change: str
    old_revision: str | None
    new_revision: str | None
    entries: list[dict[str, Any]]


class VersionDiff(BaseModel):
    old: int
    new: int
    files: list[FileChange]
    instances: list[InstanceChange]


@router.get("/api/versions")
def list_versions(
    session: CallerSession,
    state: State,
    limit: int = Query(50, ge=1, le=500),
    before: int | None = Query(None, ge=1, le=2**31 - 1, description="Older than this one."),
) -> VersionPage:
    """The config versions, newest first, and the one being served."""
    page = versions.versions(session, limit=limit, before=before).to_json()
    return VersionPage.model_validate({**page, "serving": state.version})


@router.post(
    "/api/versions",
    status_code=201,
    responses={200: {"model": Published, "description": "The same files: that version."}},
)
def upload(body: UploadRequest, state: State, caller: Caller, response: Response) -> Published:
    """Publish an uploaded project: validated in a scratch directory first (422 with every
    problem, nothing published), then written into the served directory and served."""
    files = _decoded(body.files)
    with state.publishing:
        published, fresh = versions.publish_upload(
            state.session, files, actor=caller.name, message=body.message
        )
        state.serve(fresh, published.version.id)
    if not published.created:
        response.status_code = 200
    return _published(published, state)


@router.post(
    "/api/versions/reload",
    responses={201: {"model": Published, "description": "Changed: published as a version."}},
)
def reload(
    state: State, caller: Caller, response: Response, body: ReloadRequest | None = None
) -> Published:
    """Read the served directory again and publish it if it changed (201; 200: unchanged)."""
    with state.publishing:
        published, fresh = versions.reload(
            state.session, actor=caller.name, message=(body or ReloadRequest()).message
        )
        state.serve(fresh, published.version.id)
    response.status_code = 201 if published.created else 200
    return _published(published, state)


@router.get("/api/versions/{version}")
def get_version(session: CallerSession, version: VersionNumber) -> Version:
    """One config version with its files (path -> content hash)."""
    return Version.model_validate(versions.version(session, version).to_json())


@router.get("/api/versions/{old}/diff/{new}")
def diff(session: CallerSession, old: VersionNumber, new: VersionNumber) -> VersionDiff:
    """What changes from version `old` to `new`: files, and each instance whose revision
    changes with what differs in its config."""
    return VersionDiff.model_validate(versiondiff.diff_versions(session, old, new).to_json())


def _decoded(files: dict[str, str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    bad: list[str] = []
    for path, text in files.items():
        try:
            out[path] = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            bad.append(path)
    if bad:
        raise ApiError(
            422, "invalid_upload", f"not base64: {', '.join(sorted(bad))}", {"files": sorted(bad)}
        )
    return out


def _published(published: versions.Published, state: State) -> Published:
    view = published.to_json()
    return Published.model_validate({**view, "serving": state.version})
