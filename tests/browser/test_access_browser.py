"""The cockpit in a real browser, for each role, on the FAB auth manager.

Airflow's API server on the FAB auth manager and a fresh PostgreSQL database with Flywheel's roles
applied (tests/integration/fab_airflow.py), one model version waiting for approval in the
registry. Debian's chromium signs in on FAB's login form as each role: the viewer, the operator,
the approver and the admin find "Flywheel" in the navigation and read the page, and only the
approver is offered the link to answer the waiting approval; the service account has no Flywheel
entry and the page answers it 403. Needs /usr/bin/chromium (``make browser``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflywheel.devstack.stack import EmbeddedStack
from mlflywheel.orchestration import access

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "cockpit"))
sys.path.insert(0, str(TESTS / "integration"))
from airflow_ui import sign_in_fab
from cockpit_records import gate_version, register_version
from fab_airflow import fab_stack, login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CHROMIUM = Path("/usr/bin/chromium")
WAITING_RUN = "manual__browser_access"
ANSWER_LINK = f"/dags/train/runs/{WAITING_RUN}/tasks/approve_promotion/required_actions"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    if not CHROMIUM.exists():
        pytest.fail("the browser tests need /usr/bin/chromium: run `make browser` (Debian's chromium)")
    with fab_stack(tmp_path_factory.mktemp("flywheel-access-browser")) as (running, _):
        settings = running.settings()
        version = register_version(settings, WAITING_RUN)
        gate_version(settings, version, {"pr_auc": 0.6, "roc_auc": 0.9}, airflow_run_id=WAITING_RUN, mode="approval")
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.mark.parametrize("role", [access.VIEWER, access.OPERATOR, access.APPROVER, access.ADMIN])
def test_readers_open_the_flywheel_page_and_only_the_approver_may_answer(stack, browser, role, tmp_path):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    try:
        page = context.new_page()
        sign_in_fab(page, stack.api_url, *login(stack, role))
        page.get_by_role("link", name="Flywheel").first.click()
        page.wait_for_url(f"{stack.api_url}/plugin/flywheel", timeout=30_000)
        cockpit = page.frame_locator("iframe").first
        awaiting = cockpit.locator("#awaiting")
        expect(awaiting).to_be_visible(timeout=60_000)
        answer = awaiting.locator(f'a[href="{ANSWER_LINK}"]')
        if role == access.APPROVER:
            expect(answer).to_have_count(1)
        else:
            expect(answer).to_have_count(0)
            expect(awaiting).to_contain_text("an approver's")
        page.screenshot(path=str(tmp_path / f"flywheel-{role}.png"), full_page=True)
    finally:
        context.close()
    assert (tmp_path / f"flywheel-{role}.png").stat().st_size > 10_000


def test_the_service_account_has_no_cockpit(stack, browser):
    from playwright.sync_api import expect

    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in_fab(page, stack.api_url, *login(stack, access.SERVICE))
        expect(page.get_by_role("link", name="DAGs").first).to_be_visible(timeout=60_000)  # the UI is up
        expect(page.get_by_role("link", name="Flywheel")).to_have_count(0)
        reply = page.goto(f"{stack.api_url}/flywheel/")
        assert reply is not None and reply.status == 403
    finally:
        context.close()
