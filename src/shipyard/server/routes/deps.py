"""What routes are given: the server's state, the caller, and the caller's session."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shipyard.app.session import Session
from shipyard.server.auth import Principal
from shipyard.server.state import ServerState


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.shipyard
    return state


def caller(request: Request) -> Principal:
    principal: Principal = request.state.principal  # set by auth.authorize, which runs first
    return principal


def caller_session(request: Request) -> Session:
    """The served project as the caller acts on it (the audit log names the caller)."""
    return server_state(request).session_for(caller(request).name)


State = Annotated[ServerState, Depends(server_state)]
Caller = Annotated[Principal, Depends(caller)]
CallerSession = Annotated[Session, Depends(caller_session)]
