"""An operator's journey through Airflow's UI, in a real Chromium, on a loop that really ran.

The embedded stack runs `train` with ``FLYWHEEL_PROMOTION_MODE=approval`` on four validated days
(the scheduled run that unpausing starts); once its gate has passed and it waits for an answer,
Debian's chromium (driven by Playwright) signs in and:

1. opens the **Flywheel** page: no champion yet, v1 waiting for approval;
2. opens `train`'s **Flywheel** DAG tab and the run's **Flywheel** run tab;
3. follows the **Model version** extra link from `evaluate_and_promote`'s details;
4. fills the `train` trigger form with a bad value (an empty required reason) and sees the form
   refuse it;
5. follows the cockpit's link to **Required Actions**, reads the gate's evidence there, clicks
   **Approve**, and sees v1 become champion on the Flywheel page, approved by the admin.

Screenshots go to ``test-artifacts/browser/`` (``FLYWHEEL_TEST_ARTIFACTS`` moves it); with
``FLYWHEEL_DOCS_SCREENSHOTS=docs`` three of them are also written there for the README.
About 6 minutes. Needs /usr/bin/chromium (``make browser``).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflywheel import registry
from mlflywheel.devstack.stack import ADMIN_USER, EmbeddedStack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from airflow_ui import sign_in
from approval_runs import APPROVAL_TASK, approval_stack, land_window, wait_for_run, wait_for_task

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("FLYWHEEL_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
DOCS_SHOTS = {"flywheel-waiting.png": "cockpit-approval-waiting.png",
              "required-action.png": "required-action.png",
              "flywheel-approved.png": "cockpit-champion.png"}  # fmt: skip


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedStack, str]]:
    """A stack whose scheduled `train` run waits for an answer in Required Actions."""
    if not CHROMIUM.exists():
        pytest.fail("the browser tests need /usr/bin/chromium: run `make browser` (Debian's chromium)")
    stack = approval_stack(tmp_path_factory.mktemp("flywheel-journey"), approval_timeout_hours=2)
    stack.start()
    try:
        land_window(stack)
        stack.wait_for_dags(["train"])
        stack.api().set_paused("train", False)  # catchup off: the latest tick runs at once
        deadline = time.monotonic() + 180
        runs: list[dict] = []
        while not runs and time.monotonic() < deadline:
            runs = stack.api().dag_runs("train")
            time.sleep(2)
        assert runs, "unpausing train started no run"
        run_id = runs[0]["dag_run_id"]
        wait_for_task(stack, run_id, APPROVAL_TASK, {"awaiting_input"})
        yield stack, run_id
    finally:
        stack.stop()


def test_operator_follows_a_promotion_from_the_flywheel_page_to_approval(waiting: tuple[EmbeddedStack, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    stack, run_id = waiting
    api = stack.api_url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / name), full_page=True)

            sign_in(page, stack)

            # 1. The Flywheel page: nothing promoted yet, v1 waits for a person.
            page.get_by_role("link", name="Flywheel").first.click()
            page.wait_for_url(f"{api}/plugin/flywheel", timeout=30_000)
            cockpit = page.frame_locator("iframe").first
            expect(cockpit.locator("#no-champion")).to_contain_text("no champion yet", timeout=60_000)
            expect(cockpit.get_by_role("heading", name="Waiting for approval")).to_be_visible()
            expect(cockpit.locator("#awaiting")).to_contain_text("v1")
            expect(cockpit.locator("#versions")).to_contain_text("awaiting_approval")
            shot("flywheel-waiting.png")

            # 2. train's DAG tab and this run's tab, inside Airflow's own pages.
            page.goto(f"{api}/dags/train", wait_until="load")
            page.locator('a[href="/dags/train/plugin/flywheel-dag"]').click()
            dag_tab = page.frame_locator("iframe").first
            expect(dag_tab.locator("body")).to_contain_text("awaiting_approval", timeout=60_000)
            shot("train-dag-tab.png")
            page.goto(f"{api}/dags/train/runs/{run_id}", wait_until="load")
            page.locator(f'a[href="/dags/train/runs/{run_id}/plugin/flywheel-run"]').click()
            run_tab = page.frame_locator("iframe").first
            expect(run_tab.get_by_role("heading", name=f"train run {run_id}: model version 1")).to_be_visible(
                timeout=60_000
            )
            expect(run_tab.locator("body")).to_contain_text("awaiting a person's answer")
            shot("train-run-tab.png")

            # 3. The extra link on the gate's task instance leads to the version's page.
            page.goto(f"{api}/dags/train/runs/{run_id}/tasks/evaluate_and_promote/details", wait_until="load")
            link = page.get_by_role("link", name="Model version")
            expect(link).to_have_attribute("href", "/flywheel/version/1", timeout=60_000)
            link.click()
            page.wait_for_url(f"{api}/flywheel/version/1", timeout=30_000)
            expect(page.get_by_role("heading", name="model version 1")).to_be_visible()
            expect(page.locator("body")).to_contain_text("awaiting_approval")

            # 4. The trigger form refuses a bad value: the reason is required.
            page.goto(f"{api}/dags/train", wait_until="load")
            page.get_by_role("button", name="Trigger").first.click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text("Promotion mode")).to_be_visible()
            expect(dialog.get_by_text("Advanced: training hyper-parameters")).to_be_visible()
            reason = dialog.locator('[name="element_reason"]')
            reason.fill("")
            reason.blur()
            expect(dialog.get_by_text("This field is required")).to_be_visible()
            expect(dialog.get_by_role("button", name="Trigger")).to_be_disabled()
            shot("trigger-form-refuses.png")
            page.keyboard.press("Escape")
            assert len(stack.api().dag_runs("train")) == 1  # nothing was triggered

            # 5. From the cockpit to Required Actions: read the evidence, approve.
            page.goto(f"{api}/plugin/flywheel", wait_until="load")
            page.frame_locator("iframe").first.locator("#awaiting").get_by_role("link", name="Required Actions").click()
            page.wait_for_url(f"**/dags/train/runs/**/tasks/{APPROVAL_TASK}/required_actions", timeout=30_000)
            expect(page.get_by_text("Promote flywheel-transactions v1 to champion?")).to_be_visible(timeout=60_000)
            expect(page.get_by_text("passed the promotion gate", exact=False)).to_be_visible()
            shot("required-action.png")
            page.get_by_role("button", name="Approve").click()
            assert wait_for_run(stack, run_id) == "success"
            assert str(registry.champion(stack.settings()).version) == "1"

            page.goto(f"{api}/plugin/flywheel", wait_until="load")
            cockpit = page.frame_locator("iframe").first
            expect(cockpit.get_by_role("heading", name="Champion: version 1")).to_be_visible(timeout=60_000)
            expect(cockpit.locator(".approval").first).to_contain_text(f"approved by {ADMIN_USER}")
            expect(cockpit.get_by_role("heading", name="Waiting for approval")).to_have_count(0)
            shot("flywheel-approved.png")
        finally:
            browser.close()
    for name in ("flywheel-waiting.png", "required-action.png", "flywheel-approved.png", "trigger-form-refuses.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000, name
    docs = os.environ.get("FLYWHEEL_DOCS_SCREENSHOTS")
    if docs:
        target = Path(docs) if Path(docs).is_absolute() else ROOT / docs
        target.mkdir(parents=True, exist_ok=True)
        for source, name in DOCS_SHOTS.items():
            shutil.copyfile(ARTIFACTS / source, target / name)
