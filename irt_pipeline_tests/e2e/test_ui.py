"""In a real browser: materialize the demo bank from the asset graph, as a person would.

`make e2e` (and .ci/run) runs this; plain `pytest` leaves it out (marker e2e). Screenshots:
e2e-artifacts/01-asset-graph.png ... 06-convergence-plot.png.
"""

from __future__ import annotations

import re
import time

import psycopg
import pytest
from playwright.sync_api import Page, expect

from irt_pipeline_tests.e2e.conftest import DEMO_BANK, DevServer

pytestmark = pytest.mark.e2e

RUN_SECONDS = 300  # the demo bank (1000 items x 5000 students) takes about 30 s here


def shot(page: Page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def skip_community_dialog(page: Page) -> None:
    """A fresh instance greets the first visit with "Join the Dagster community"."""
    skip = page.get_by_role("button", name="Skip", exact=True)
    try:
        skip.wait_for(timeout=8_000)
    except Exception:
        return
    skip.click()


def wait_for_run(page: Page, deadline_seconds: float) -> str:
    """Wait on the run page until the run's status tag reads Success or Failure."""
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if status.is_visible():
            return status.inner_text()
        time.sleep(1)
    return "timeout"


def database_rows(server: DevServer, run_id: str) -> tuple[dict, int, int]:
    with psycopg.connect(server.database_conninfo()) as conn:
        cur = conn.execute(
            "SELECT id, status, items_calibrated, items_flagged, dagster_run_id FROM irt_calibration_runs"
            " WHERE item_bank = %s", (DEMO_BANK,),
        )
        rows = [dict(zip([c.name for c in cur.description], r)) for r in cur.fetchall()]
        assert len(rows) == 1, rows
        (run,) = rows
        assert run["dagster_run_id"] == run_id
        parameters, flagged = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_flagged) FROM irt_item_parameters"
            " WHERE calibration_run_id = %s", (run["id"],),
        ).fetchone()
    return run, parameters, flagged


def check_entry(page: Page, name: str):
    """A check in the list of the asset's Checks tab: its name, then its latest status."""
    return page.locator(f"span:has(> div[title='{name}'])").first


def open_markdown(page: Page, key: str):
    """Open the "[Show Markdown]" dialog of a metadata entry on an asset page; return the dialog."""
    row = page.locator("tr", has_text=key).first
    row.scroll_into_view_if_needed()
    row.get_by_text("Show Markdown").click()
    dialog = page.get_by_role("dialog").filter(has_text=key)
    expect(dialog).to_be_visible()
    page.wait_for_timeout(1_000)  # the dialog fades in: let the screenshot see it whole
    return dialog


def test_materialize_the_demo_bank_from_the_asset_graph(dev_server: DevServer, page: Page, artifacts):
    page.goto(f"{dev_server.url}/asset-groups")
    skip_community_dialog(page)
    expect(page.get_by_text("supabase_writes").first).to_be_visible()
    shot(page, artifacts, "01-asset-graph")

    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_placeholder("Filter partitions").fill(DEMO_BANK)
    page.get_by_text(DEMO_BANK, exact=True).filter(visible=True).first.click()
    page.keyboard.press("Escape")  # close the partition list, keep the dialog
    launch = dialog.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    expect(page.get_by_placeholder("Filter partitions")).to_be_hidden()
    page.wait_for_timeout(500)  # the partition list fades out
    shot(page, artifacts, "02-launch-demo-bank")
    launch.click()

    view = page.locator("a[href^='/runs/']").first  # the "Launched run ... View" toast
    view.wait_for()
    run_id = view.get_attribute("href").rsplit("/", 1)[-1]
    page.goto(f"{dev_server.url}/runs/{run_id}")
    status = wait_for_run(page, RUN_SECONDS)
    shot(page, artifacts, "03-run")
    assert status == "Success", f"run {run_id} ended {status}; see e2e-artifacts/03-run.png and dagster-dev.log"

    run, parameters, flagged = database_rows(dev_server, run_id)
    assert run["status"] == "completed"
    assert parameters == run["items_calibrated"] > 900       # 1000 items, ~7% under 100 responses
    assert flagged == run["items_flagged"] >= 8              # the demo's 8 Guttman items at least

    page.goto(f"{dev_server.url}/assets/fit_statistics?view=checks")
    # the WARN check, failed: misfitting items were found (the blocking check passed)
    expect(check_entry(page, "item_quality")).to_contain_text("Failed")
    expect(check_entry(page, "parameters_within_bounds")).to_contain_text("Succeeded")
    expect(page.locator("tr", has_text="flagged_count").first).to_contain_text(str(flagged))
    shot(page, artifacts, "04-item-quality-check")

    page.goto(f"{dev_server.url}/assets/fit_statistics")
    picture = open_markdown(page, "empirical_icc_plot").locator("img[src^='data:image/png;base64,']")
    expect(picture).to_be_visible()
    page.screenshot(path=str(artifacts / "05-empirical-icc-plot.png"))

    page.goto(f"{dev_server.url}/assets/item_parameters")
    picture = open_markdown(page, "convergence_plot").locator("img[src^='data:image/png;base64,']")
    expect(picture).to_be_visible()
    page.screenshot(path=str(artifacts / "06-convergence-plot.png"))
