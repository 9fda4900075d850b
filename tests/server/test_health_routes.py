"""Health and drift through the API on the one-instance project (web@local, deployed once): a
check now stores and answers each host's and instance's health, GET answers the stored view,
drift is a deep round, accept takes a hand edit; what names nothing known is refused."""

from __future__ import annotations

from pathlib import Path

from .conftest import Api, wait_finished


def deployed(api: Api) -> Path:
    started = api.client.post("/api/rollouts", json={"instances": ["web@local"], "force": True})
    assert started.status_code == 202, started.text
    assert wait_finished(api, started.json()["id"])["status"] == "success"
    return api.root / ".shipyard" / "hosts" / "local" / "web" / "current"


def test_check_drift_and_accept_through_the_api(api: Api) -> None:
    live = deployed(api)
    checked = api.client.post("/api/hosts/health/check", json={})
    assert checked.status_code == 200, checked.text
    report = checked.json()
    assert [(h["host"], h["state"]) for h in report["hosts"]] == [("local", "online")]
    [web] = report["instances"]
    assert (web["instance"], web["health"], web["drift"]) == ("web@local", "healthy", [])
    assert api.client.get("/api/hosts/health").json()["instances"][0]["health"] == "healthy"

    files = [p for p in live.iterdir() if p.is_file() and not p.name.startswith(".")]
    files[0].write_text(files[0].read_text() + "\n# by hand\n")
    drifted = api.client.post("/api/drift", json={}).json()
    [item] = drifted["instances"][0]["drift"]
    assert (item["kind"], f"changed: {files[0].name}" in item["detail"]) == ("files", True)

    accepted = api.client.post("/api/drift/accept", json={"instances": ["web@local"]})
    assert accepted.json() == {"accepted": ["web@local"]}
    assert api.client.post("/api/drift", json={}).json()["instances"][0]["drift"] == []

    refused = api.client.post("/api/drift/accept", json={"instances": ["nope@local"]})
    assert refused.status_code == 400
    assert "nope@local" in refused.json()["error"]["message"]
    assert api.client.post("/api/drift", json={"site": "mars"}).status_code == 400
