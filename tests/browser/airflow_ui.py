"""What every browser test does first in Airflow's UI: sign in (the simple auth manager's form, or FAB's)."""

from __future__ import annotations

from typing import Any

from mlflywheel.devstack.stack import ADMIN_USER, EmbeddedStack


def sign_in(page: Any, stack: EmbeddedStack) -> None:
    """Open the UI's root, sign in as the stack's admin, and wait for the home page."""
    page.goto(f"{stack.api_url}/", wait_until="load")
    page.locator('input[name="username"]').fill(ADMIN_USER)
    page.locator('input[name="password"]').fill(stack.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{stack.api_url}/", timeout=60_000)


def sign_in_fab(page: Any, base_url: str, username: str, password: str) -> None:
    """Sign in on the FAB auth manager's login form and wait for the UI's home page."""
    page.goto(f"{base_url}/", wait_until="load")
    page.wait_for_url("**/auth/login/**", timeout=60_000)
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(password)
    page.locator('input[type="submit"]').click()
    page.wait_for_url(f"{base_url}/", timeout=60_000)
