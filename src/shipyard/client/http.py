"""`ApiClient`: requests to a Shipyard server with a token; its errors as Shipyard's own.

A refusal in the server's one shape (`{"error": {"code", "message", "details"}}`) becomes the
error the CLI would have raised locally: a config error with every problem (file:line:field),
a usage error for a bad request or an unknown name, a deploy error for a conflict; anything
else is a `RemoteError` naming the status and the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shipyard import errors
from shipyard.client.credentials import normal_url, token_for
from shipyard.errors import ConfigError, Problem, ShipyardError, UsageError

DEFAULT_TIMEOUT = 30.0


class RemoteError(ShipyardError):
    """The server refused or failed a request (status, code, message)."""

    def __init__(self, url: str, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"{url}: {message} (HTTP {status}, {code})")


@dataclass(frozen=True)
class ServerEvent:
    """One Server-Sent Event: its id (the store's event id), type and JSON data."""

    id: str | None
    event: str
    data: Any


class ApiClient:
    """A server's REST API as the CLI calls it."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = normal_url(url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_environment(cls, url: str, env: Mapping[str, str]) -> ApiClient:
        token = token_for(url, env)
        if token is None:
            raise UsageError(f"no token for {normal_url(url)}: run `shipyard login {url}` first")
        return cls(url, token)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._json(self._send("GET", path, params=_params(params)))

    def post(self, path: str, body: Any = None) -> Any:
        return self._json(self._send("POST", path, json=body if body is not None else {}))

    def delete(self, path: str) -> Any:
        return self._json(self._send("DELETE", path))

    def stream(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        last_event_id: str | None = None,
    ) -> Iterator[ServerEvent]:
        """The Server-Sent Events of `path` as they come (no read timeout: a quiet stream is
        fine); ends when the server ends the stream."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(DEFAULT_TIMEOUT, read=None)
        try:
            with self._http.stream(
                "GET", path, params=_params(params), headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    self._json(response)
                yield from parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise RemoteError(self.url, 0, "unreachable", f"the stream broke: {exc}") from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(
                self.url, 0, "unreachable", f"cannot reach the server: {exc}"
            ) from exc

    def _json(self, response: httpx.Response) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.status_code < 400:
            return body
        raise self._error(response.status_code, body)

    def _error(self, status: int, body: Any) -> ShipyardError:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return RemoteError(self.url, status, "http_error", f"HTTP {status}")
        code, message = str(error.get("code", "")), str(error.get("message", ""))
        details = error.get("details") or {}
        if code == "invalid_config":
            return ConfigError(
                [
                    Problem(
                        message=str(p.get("message", "")),
                        path=str(p.get("field", "")),
                        file=str(p.get("file", "")),
                        line=int(p.get("line", 0) or 0),
                        column=int(p.get("column", 0) or 0),
                    )
                    for p in details.get("problems", [])
                ]
            )
        if code in ("bad_request", "invalid_request") or (status == 404 and code == "not_found"):
            return UsageError(message)
        if status == 409:
            return errors.DeployError(message)
        return RemoteError(self.url, status, code, message)


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


def parse_sse(lines: Iterator[str]) -> Iterator[ServerEvent]:
    """Server-Sent Events from the lines of a stream (comments and keep-alives skipped)."""
    event_id: str | None = None
    kind = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    value: Any = json.loads(text)
                except ValueError:
                    value = text
                yield ServerEvent(event_id, kind, value)
            event_id, kind, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value_text = line.partition(":")
        value_text = value_text.removeprefix(" ")
        if field == "id":
            event_id = value_text
        elif field == "event":
            kind = value_text
        elif field == "data":
            data.append(value_text)
