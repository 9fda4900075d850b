"""The error answer every route may give, as the OpenAPI schema documents it (errors.py makes
it): `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from typing import Any

from shipyard.server.errors import ErrorBody

_ANSWER: dict[str, Any] = {"model": ErrorBody}

# What a reading route may answer besides its result: a bad name or filter (400), no such
# record (404), an invalid request or an invalid served config (422), the store away (503).
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ANSWER, "description": "An unknown name or a bad filter, named."},
    404: {**_ANSWER, "description": "No such record."},
    422: {**_ANSWER, "description": "An invalid request, or the served config is invalid."},
    503: {**_ANSWER, "description": "The store is unavailable; retry."},
}
