"""The web app in headless Chromium against the local stack, one pathologist's session end to end:
log in, create categories, label by click, brush and guided hotkey, review and approve, retrain
and see predictions, open the audit timeline. Every step checks the API's state, not only the
DOM; a screenshot of each mode goes to test-artifacts/e2e/."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIRST_VIEW_BUDGET_MS = 1500


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except AssertionError as err:  # e.g. a 404 before the write is visible
            value = err
        if value and not isinstance(value, AssertionError):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last value {value!r})")
        time.sleep(0.2)


def labels_of(stack: Stack, project: str, slide: str, user: str = "pat") -> dict[int, str]:
    res = stack.call("GET", f"/projects/{project}/slides/{slide}/labels", user)
    return {e["id"]: e["c"] for e in res["entries"] if e["c"] is not None}


def centroid_screen(page: Any, row: dict[str, int]) -> tuple[float, float]:
    """Screen position of a superpixel's centroid pixel (must lie inside it)."""
    return page.evaluate(
        """([x, y]) => { const v = window.histolabel.viewer;
            const p = v.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x + 0.5, y + 0.5));
            const r = v.element.getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }""",
        [row["cx"], row["cy"]],
    )


def inside_rows(stack: Stack) -> list[dict[str, int]]:
    """Superpixels whose centroid pixel carries their own id (convex enough to click)."""
    import numpy as np
    import zarr

    seg = np.asarray(zarr.open_array(stack.slide.root / "image.ome.zarr/labels/superpixels/0", mode="r")[0])
    return [r for r in stack.slide.rows if seg[r["cy"], r["cx"]] == r["id"] and r["area"] > 2000]


def test_full_session(stack: Stack, browser_context: Any, artifacts: Path) -> None:
    project = f"e2e{uuid.uuid4().hex[:8]}"
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # --- log in (Cognito USER_PASSWORD_AUTH against the local pool) and create a project ---
    page.goto(stack.web_url + "/index.html")
    page.fill("#login-username", "pat")
    page.fill("#login-password", "wrong-password")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:not(:empty)")
    assert "password" in page.inner_text("#login-error").lower()
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#login-dialog:not([open])", state="attached")
    page.wait_for_function("document.querySelector('#user-name').textContent === 'pat'")
    page.click("#new-project-btn")
    page.fill("#new-project-form [name=project_id]", project)
    page.fill("#new-project-form [name=name]", "E2E project")
    page.click("#new-project-form button[type=submit]")
    page.wait_for_selector("#new-project-dialog:not([open])", state="attached")
    assert page.input_value("#project-id") == project, page.inner_text("#new-project-form .error")
    assert stack.call("GET", f"/projects/{project}", "pat")["your_role"] == "owner"

    # --- a slide arrives (ingest + segment reported); the viewer draws its first viewport ---
    slide = stack.add_slide(project, "pat")
    page.fill("#project-id", project)
    page.click("#project-form button[type=submit]")
    page.wait_for_function("window.__firstViewportMs !== undefined", timeout=20_000)
    first_ms = page.evaluate("window.__firstViewportMs")
    print(f"\nfirst full viewport drawn in {first_ms:.0f} ms")
    assert first_ms < FIRST_VIEW_BUDGET_MS
    page.wait_for_function("window.histolabel.overlay && window.histolabel.overlay.chunks.size > 0")
    assert not errors, errors
