"""The cockpit as an operator sees it: a real Chromium logs in on Airflow's UI and opens "Flywheel".

Starts the embedded stack (Airflow on SQLite + an MLflow server, about a minute), records a few
ledger summaries, one drift report and two gated model versions (v1 promoted, then v2 promoted
over it) in the stack's own lake and MLflow, then drives Debian's chromium through Playwright:
sign in, click the navigation entry, read the page inside the plugin's iframe, and save a
screenshot under pytest's temporary folder. Needs /usr/bin/chromium (``make browser``).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflywheel import ledger
from mlflywheel.devstack.stack import EmbeddedStack, free_port
from mlflywheel.lake import keys, lake_from_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cockpit"))
from airflow_ui import sign_in
from cockpit_records import gate_version, register_version

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CHROMIUM = Path("/usr/bin/chromium")
DAYS = [dt.date(2026, 11, 20) + dt.timedelta(days=i) for i in range(3)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    if not CHROMIUM.exists():
        pytest.fail("the browser tests need /usr/bin/chromium: run `make browser` (Debian's chromium)")
    home = tmp_path_factory.mktemp("flywheel-browser")
    running = EmbeddedStack(home=home, api_port=free_port(), mlflow_port=free_port())
    running.start()
    try:
        settings = running.settings()
        lake = lake_from_settings(settings)
        for i, day in enumerate(DAYS):
            quarantined = 4 if i == 1 else 0
            ledger.write_summary(lake, {
                "dataset": settings.dataset, "partition": day.isoformat(),
                "status": "partially_quarantined" if quarantined else "validated",
                "rows_in": 200, "rows_validated": 200 - quarantined, "rows_quarantined": quarantined,
                "reasons": {"amount out of range": quarantined} if quarantined else {},
                "partition_failures": [], "run_id": f"scheduled__{day.isoformat()}T00:00:00+00:00",
                "report_key": keys.validation_report_key(settings.dataset, day),
            })  # fmt: skip
        lake.put_json(keys.drift_report_key(settings.dataset, DAYS[-1]), {
            "dataset": settings.dataset, "day": DAYS[-1].isoformat(), "status": "drift",
            "triggers": ["data_drift"], "drifted_features": ["amount"], "champion_version": "1",
            "data_drift": {"threshold": 0.001, "features": [
                {"name": "amount", "kind": "numeric", "test": "ks", "p_value": 1e-9, "effect_size": "psi",
                 "effect": 0.8, "significant": True, "drifted": True},
                {"name": "channel", "kind": "categorical", "test": "chi2", "p_value": 0.4, "effect_size": "psi",
                 "effect": 0.01, "significant": False, "drifted": False},
            ]},
            "prediction_drift": {"p_value": 0.002, "drifted": False}, "performance": None,
            "summary": "data drift: 1 of 2 monitored features (amount)",
        })  # fmt: skip
        for number, metrics, interval in ((1, {"pr_auc": 0.5, "roc_auc": 0.86}, None),
                                          (2, {"pr_auc": 0.56, "roc_auc": 0.88}, (0.02, 0.09))):  # fmt: skip
            run_id = f"scheduled__2026-11-2{number}T02:00:00+00:00"
            version = register_version(settings, run_id)
            gate_version(settings, version, metrics, airflow_run_id=run_id, interval=interval)
        yield running
    finally:
        running.stop()


def test_operator_opens_the_flywheel_page(stack: EmbeddedStack, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            sign_in(page, stack)

            page.get_by_role("link", name="Flywheel").first.click()
            page.wait_for_url(f"{stack.api_url}/plugin/flywheel", timeout=30_000)
            cockpit = page.frame_locator("iframe").first
            expect(cockpit.get_by_role("heading", name="Champion: version 2")).to_be_visible(timeout=60_000)
            expect(cockpit.get_by_role("heading", name="Previous champion: version 1")).to_be_visible()
            expect(cockpit.locator("#versions tr")).to_have_count(3)  # header + two versions
            expect(cockpit.locator("#ledger-table tr")).to_have_count(1 + len(DAYS))
            expect(cockpit.locator("#drift-table tr")).to_have_count(2)
            expect(cockpit.locator("#pvalue-plot svg")).to_be_visible()
            expect(cockpit.locator("#ledger-table")).to_contain_text("amount out of range (4)")
            # MLflow links point at the stack's MLflow UI.
            link = cockpit.get_by_role("link", name="MLflow model version").first
            assert link.get_attribute("href") == f"{stack.mlflow_url}/#/models/flywheel-transactions/versions/2"
            # ... and open it in a new tab, although the plugin's iframe may not open popups.
            with page.context.expect_page(timeout=15_000) as opened:
                link.click()
            opened.value.wait_for_load_state()
            assert opened.value.url.startswith(f"{stack.mlflow_url}/")
            assert opened.value.url.endswith("#/models/flywheel-transactions/versions/2")
            opened.value.close()
            page.screenshot(path=str(tmp_path / "flywheel-page.png"), full_page=True)

            # Inside the iframe, a drift day's page and a readable 404.
            cockpit.get_by_role("link", name=DAYS[-1].isoformat()).first.click()
            expect(cockpit.get_by_role("heading", name=f"Drift check {DAYS[-1].isoformat()}")).to_be_visible()
            missing = page.request.get(f"{stack.api_url}/flywheel/report/validation/1999-01-01")
            assert missing.status == 404 and "was not ingested" in missing.text()
        finally:
            browser.close()
    assert (tmp_path / "flywheel-page.png").stat().st_size > 10_000
