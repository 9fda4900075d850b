"""Accounts against the project's store: `shipyard users ...` and `shipyard tokens ...`.

These act on the store directly, as its owner does (the first admin is made this way:
`shipyard users add NAME --admin`); a password or token is printed once and never again.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from shipyard.cli.app import app
from shipyard.cli.context import session
from shipyard.cli.render import JsonFlag, console, host_text, print_json
from shipyard.masking import NO_SECRETS

if TYPE_CHECKING:
    from shipyard.app.accounts import User

users_app = typer.Typer(help="Users, their roles and sites.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

Roles = Annotated[
    list[str] | None,
    typer.Option("--role", help="admin, design, deployment or viewer (repeat for several)."),
]
Sites = Annotated[
    list[str] | None,
    typer.Option("--site", help="Limit the deployment role to this site (repeat for several)."),
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _password(from_stdin: bool) -> str | None:
    return sys.stdin.readline().rstrip("\r\n") if from_stdin else None


def token_days(value: int) -> int:
    """A token's lifetime (`--days`): 1 to 365, refused by the parser so it names the option."""
    if not 1 <= value <= 365:
        raise typer.BadParameter(f"a token lasts 1 to 365 days, not {value}")
    return value


def _user_json(user: User) -> dict[str, object]:
    return {
        "name": user.name,
        "roles": list(user.roles),
        "sites": None if user.sites is None else list(user.sites),
        "has_password": user.has_password,
        "enabled": user.enabled,
        "created_at": user.created_at.isoformat(),
        "created_by": user.created_by,
    }


def _say(line: str) -> None:
    console().print(line, markup=False, highlight=False, soft_wrap=True)


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: str,
    role: Roles = None,
    site: Sites = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    password_stdin: PasswordStdin = False,
    json_output: JsonFlag = False,
) -> None:
    """Add a user (with --admin: the first admin); without a password it signs in by token."""
    from shipyard.app.accounts import add_user

    roles = [*(role or []), *(["admin"] if admin else [])]
    made = add_user(
        session(ctx), name, roles=roles, sites=site or None, password=_password(password_stdin)
    )
    if json_output:
        print_json(_user_json(made), masker=NO_SECRETS)
    else:
        _say(f"user {made.name} added: {', '.join(made.roles)}")


@users_app.command("list")
def users_list(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Every user with roles, sites and state."""
    from shipyard.app import accounts

    listed = accounts.users(session(ctx))
    if json_output:
        print_json({"users": [_user_json(u) for u in listed]}, masker=NO_SECRETS)
        return
    table = Table("name", "roles", "sites", "password", "state")
    for user in listed:
        table.add_row(
            host_text(NO_SECRETS, user.name),
            ", ".join(user.roles),
            "all" if user.sites is None else ", ".join(user.sites),
            "yes" if user.has_password else "no",
            "enabled" if user.enabled else "disabled",
        )
    console().print(table)


@users_app.command("change")
def users_change(
    ctx: typer.Context,
    name: str,
    role: Roles = None,
    site: Sites = None,
    all_sites: Annotated[
        bool, typer.Option("--all-sites", help="Lift the deployment role's site limit.")
    ] = False,
) -> None:
    """Set a user's roles (--role, all of them) and sites (--site or --all-sites)."""
    from shipyard.app.accounts import change_user

    if site and all_sites:
        raise typer.BadParameter("give --site or --all-sites, not both")
    sites: list[str] | bool | None = None if all_sites else (site or False)
    changed = change_user(session(ctx), name, roles=role or None, sites=sites)
    shown = "all sites" if changed.sites is None else ", ".join(changed.sites)
    _say(f"user {changed.name}: {', '.join(changed.roles)} ({shown})")


@users_app.command("disable")
def users_disable(ctx: typer.Context, name: str) -> None:
    """Disable a user: their sessions end and their tokens stop working at once."""
    from shipyard.app.accounts import change_user

    change_user(session(ctx), name, disabled=True)
    _say(f"user {name} disabled")


@users_app.command("enable")
def users_enable(ctx: typer.Context, name: str) -> None:
    """Enable a disabled user again."""
    from shipyard.app.accounts import change_user

    change_user(session(ctx), name, disabled=False)
    _say(f"user {name} enabled")


@users_app.command("reset")
def users_reset(ctx: typer.Context, name: str, password_stdin: PasswordStdin = False) -> None:
    """A new password (generated and printed once unless given on stdin); ends their
    sessions and lifts a lockout."""
    from shipyard.app.accounts import reset_password

    generated = reset_password(session(ctx), name, _password(password_stdin))
    if generated is None:
        _say(f"password of {name} changed")
    else:
        _say(f"new password of {name} (shown once): {generated}")


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    user: Annotated[str, typer.Option(help="The token's user.")],
    name: Annotated[str, typer.Option(help="What the token is for (shown in listings).")],
    days: Annotated[
        int, typer.Option(help="Days until it expires (1 to 365).", callback=token_days)
    ] = 90,
    read_only: Annotated[bool, typer.Option("--read-only", help="Reading only.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Make a token and print it once: the store keeps only its hash."""
    from shipyard.app.tokens import create_token

    made = create_token(session(ctx), user, name=name, days=days, read_only=read_only)
    if json_output:
        # The one output that carries a token: its owner asked for it, to store it.
        sys.stdout.write(f'{{"token": "{made.token}", "id": "{made.info.id}"}}\n')
        return
    _say(f"token {made.info.id} for {made.info.user}, expires {made.info.expires_at:%Y-%m-%d}")
    _say(f"shown once: {made.token}")


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Only this user's.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Tokens with their prefix, expiry, last use and revocation (never the token)."""
    from shipyard.app.tokens import tokens

    listed = tokens(session(ctx), user)
    if json_output:
        print_json({"tokens": [t.to_json() for t in listed]}, masker=NO_SECRETS)
        return
    table = Table("id", "user", "name", "prefix", "expires", "last used", "state")
    for t in listed:
        state = "revoked" if t.revoked_at else ("read-only" if t.read_only else "active")
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        table.add_row(
            t.id, t.user, host_text(NO_SECRETS, t.name), t.prefix + "…",
            f"{t.expires_at:%Y-%m-%d}", used, state,
        )  # fmt: skip
    console().print(table)


@tokens_app.command("revoke")
def tokens_revoke(ctx: typer.Context, token_id: str) -> None:
    """Revoke a token: refused from its next request on."""
    from shipyard.app.tokens import revoke

    revoked = revoke(session(ctx), token_id)
    _say(f"token {revoked.id} of {revoked.user} revoked")
