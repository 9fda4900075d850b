"""`shipyard health` (each site's, host's and instance's health, as the monitor last saw it or
checked now) and `shipyard drift` (where hosts differ from the store, and accepting files
changed on purpose)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import remote, run_async, session
from shipyard.cli.render import JsonFlag, console, host_text, print_json
from shipyard.masking import NO_SECRETS, Masker

if TYPE_CHECKING:
    from shipyard.app.health import HealthReport

Site = Annotated[str | None, typer.Option("--site", help="Only this site.")]
STATE_STYLE = {
    "ok": "green",
    "online": "green",
    "healthy": "green",
    "degraded": "yellow",
    "unknown": "yellow",
    "disabled": "dim",
    "not deployed": "dim",
    "down": "red",
    "offline": "red",
    "failing": "red",
}


@app.command()
def health(
    ctx: typer.Context,
    site: Site = None,
    check: Annotated[
        bool, typer.Option("--check", help="Check every host now (one round) before showing.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Show each site's health, its hosts (online, offline) and its instances (healthy,
    failing), as the server's monitor last saw them, or as one round sees them now (--check).
    Exits 1 when a host is offline or an instance failing."""
    api = remote(ctx)
    if api is not None:
        from shipyard.app.health import HealthReport

        masker = NO_SECRETS  # what the server sends is masked already
        params = {"site": site} if site else {}
        if check:
            found = api.post("/api/hosts/health/check", params)
        else:
            found = api.get("/api/hosts/health", params)
        report = HealthReport.from_json(found)
    else:
        from shipyard.app import health as use

        cli = session(ctx)
        masker = cli.masker()
        report = run_async(use.check(cli, site=site)) if check else use.health(cli, site=site)
    if json_output:
        print_json(report.to_json(), masker=masker)
    else:
        _print_health(report, masker)
    troubled = any(h.state == "offline" for h in report.hosts) or any(
        i.health == "failing" for i in report.instances
    )
    if troubled:
        raise typer.Exit(1)


@app.command()
def drift(
    ctx: typer.Context,
    site: Site = None,
    accept: Annotated[
        list[str] | None,
        typer.Option(
            "--accept",
            help="Take this instance's live files as they are now (their checksums written"
            " again); repeat for more.",
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Compare every host with the store now (each file's checksum verified) and show what
    differs: a release switched, files changed by hand, a program stopped or running another
    command, a service the store does not know. Nothing is changed: deploy again to put it
    right, or --accept files changed on purpose. Exits 1 when anything drifted."""
    api = remote(ctx)
    from shipyard.app.health import HealthReport

    if api is not None:
        masker = NO_SECRETS
        if accept:
            api.post("/api/drift/accept", {"instances": accept})
        report = HealthReport.from_json(api.post("/api/drift", {"site": site} if site else {}))
    else:
        from shipyard.app import health as use

        cli = session(ctx)
        masker = cli.masker()
        if accept:
            run_async(use.accept(cli, accept))
        report = run_async(use.drift(cli, site=site))
    found = report.drift
    if json_output:
        print_json([d.to_json() for d in found], masker=masker)
    else:
        out = console()
        if not found:
            out.print("no drift: every host runs what the store says")
        else:
            table = Table("instance", "kind", "what differs", box=None)
            for d in found:
                table.add_row(
                    host_text(masker, d.instance, "bold"),
                    Text(d.kind.value, "yellow"),
                    host_text(masker, d.detail),
                )
            out.print(table)
    if found:
        raise typer.Exit(1)


def _print_health(report: HealthReport, masker: Masker) -> None:
    out = console()
    sites = Table("site", "state", "online", "offline", "failing", "drifted", "failures 1h",
                  box=None)  # fmt: skip
    for s in report.sites:
        c = s.counts
        sites.add_row(
            host_text(masker, s.site, "bold"),
            Text(s.state, STATE_STYLE.get(s.state, "")),
            str(c.hosts_online),
            str(c.hosts_offline),
            str(c.failing),
            str(c.drifted),
            str(c.recent_failures),
        )
    out.print(sites)
    troubled_hosts = [h for h in report.hosts if h.state != "online"]
    if troubled_hosts:
        hosts = Table("host", "site", "state", "since", "last answer", "error", box=None)
        for h in troubled_hosts:
            hosts.add_row(
                host_text(masker, h.host),
                host_text(masker, h.site),
                Text(h.state, STATE_STYLE.get(h.state, "")),
                h.since.strftime("%H:%M:%S"),
                h.last_ok_at.strftime("%H:%M:%S") if h.last_ok_at else "never",
                host_text(masker, h.error or ""),
            )
        out.print(hosts)
    troubled = [i for i in report.instances if i.health not in ("healthy", "not deployed")]
    if troubled:
        found = Table("instance", "health", "since", "why", box=None)
        for i in troubled:
            found.add_row(
                host_text(masker, i.instance),
                Text(i.health, STATE_STYLE.get(i.health, "")),
                i.since.strftime("%H:%M:%S"),
                host_text(masker, i.detail),
            )
        out.print(found)
    if not report.hosts:
        out.print("nothing checked yet: run `shipyard health --check`, or `shipyard serve`")
