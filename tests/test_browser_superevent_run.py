"""A real candidate's superevent run in headless Chromium: the advocate's day (issue 11).

A mock event goes into the session's stack.  The operator logs into Airflow, finds the run
named after its superevent among the runs of the ``superevent`` DAG, sees its tasks,
answers the advocate signoff (a Required Action) with ADVOK in the task's form, and the
run's ``initial`` task records the Initial alert.  From the task's extra link the operator
opens GraceDB's superevent page and sees the sky map.  Heavy (starts the stack, one
BAYESTAR localization): run under ``flock /tmp/gw-ops-heavy.lock``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from gw_ops.airflow.links import superevent_page_url
from tests.fixtures.browser import save_screenshot
from tests.helpers import wait_for
from tests.test_alert_path import RUN_DAG, task_result, task_state, wait_task
from tests.test_browser_airflow import log_in

pytestmark = [pytest.mark.browser, pytest.mark.stack]


def save_outline(page, tmp_path: Path, name: str) -> None:
    """The page's accessibility outline beside its screenshot (what the locators see)."""
    save_screenshot(page, tmp_path, name)
    outline = page.locator("body").aria_snapshot()
    (tmp_path / f"{name}.aria.yaml").write_text(outline)
    folder = os.environ.get("GW_OPS_TEST_SCREENSHOT_DIR")
    if folder:
        (Path(folder) / f"{name}.aria.yaml").write_text(outline)


@pytest.fixture(scope="module")
def candidate(airflow_stack):
    """A mock candidate whose run waits for its advocate."""
    from gw_ops.mock.pipeline import upload_mock_event
    for dag_id in ("lvalert_superevents_handle", "lvalert_orchestrator_localize_preferred",
                   "lvalert_orchestrator_handle_superevent", RUN_DAG):
        airflow_stack.airflow().wait_for_dag(dag_id, timeout=180)
    client = airflow_stack.gracedb()
    upload = upload_mock_event(airflow_stack.settings, uploads=1, index=1, with_external=False,
                               client=client)
    graceid = upload["graceids"][0]
    superevent_id = wait_for(lambda: client.event(graceid).json().get("superevent"), timeout=120,
                             what="superevent of the mock event")
    return {"graceid": graceid, "superevent_id": superevent_id, "client": client}


def test_the_advocate_signs_off_a_real_candidate_in_the_airflow_ui(airflow_stack, candidate,
                                                                    browser_context, tmp_path):
    settings = airflow_stack.settings
    airflow = airflow_stack.airflow()
    sid = candidate["superevent_id"]
    airflow_url = settings.airflow_api_url.rstrip("/")
    page = browser_context.new_page()
    log_in(page, airflow_url, settings)

    # the run named after the superevent, among the runs of the superevent DAG
    page.goto(f"{airflow_url}/dags/{RUN_DAG}/runs")
    run_link = page.get_by_role("link", name=sid, exact=True)
    expect(run_link).to_be_visible()
    save_outline(page, tmp_path, "superevent-runs")
    run_link.click()
    expect(page).to_have_url(f"{airflow_url}/dags/{RUN_DAG}/runs/{sid}")
    for task_id in ("localize", "preliminary_alert", "advocate_signoff", "initial"):
        expect(page.get_by_text(task_id, exact=True).first).to_be_visible()
    save_outline(page, tmp_path, "superevent-run")

    # the run asks its advocate; the advocate answers in the task's Required Action form
    assert wait_task(airflow, sid, "advocate_signoff", ("awaiting_input",)) == "awaiting_input"
    page.goto(f"{airflow_url}/dags/{RUN_DAG}/runs/{sid}/tasks/advocate_signoff/required_actions")
    expect(page.get_by_text(f"Advocate signoff of {sid}").first).to_be_visible()
    save_outline(page, tmp_path, "advocate-signoff-form")
    page.get_by_role("button", name="ADVOK", exact=True).click()
    assert wait_task(airflow, sid, "advocate_signoff", ("success", "failed"), timeout=120) == "success"
    save_outline(page, tmp_path, "advocate-signoff-answered")

    # ADVOK leads to the Initial alert, recorded by the run's initial task
    assert wait_task(airflow, sid, "initial", ("success", "failed"), timeout=120) == "success"
    assert task_state(airflow, sid, "retraction") == "skipped"
    initial = task_result(airflow, sid, "initial")
    assert initial["key"] == "Initial" and initial["ivorn"].endswith(f"#{sid}-{initial['serial_number']}-Initial")
    labels = {entry["name"] for entry in candidate["client"].labels(sid).json()["labels"]}
    assert "ADVOK" in labels

    # the task's extra link opens GraceDB's superevent page, with the sky map shown (copied
    # to the superevent after the Preliminary: the run's annotate task saw it there)
    assert wait_task(airflow, sid, "annotate", ("success", "failed", "skipped")) == "success"
    page.goto(f"{airflow_url}/dags/{RUN_DAG}/runs/{sid}/tasks/initial/details")
    gracedb_link = page.get_by_role("link", name="GraceDB superevent", exact=True)
    expect(gracedb_link).to_have_attribute("href", superevent_page_url(settings, sid))
    save_outline(page, tmp_path, "initial-task-details")
    with browser_context.expect_page() as opened:  # another origin: a new tab
        gracedb_link.click()
    gracedb = opened.value
    image = gracedb.locator("#log img.inline-image[alt='bayestar.png']").first
    expect(image).to_be_visible()
    gracedb.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    save_outline(gracedb, tmp_path, "gracedb-superevent-page")
