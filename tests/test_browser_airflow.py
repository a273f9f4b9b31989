"""The Airflow UI of the running stack in headless Chromium: what an operator sees.

The operator logs in with the stack's admin credentials, finds the gw-ops DAGs in the DAG
list, follows the navigation bar's "GraceDB" entry to GraceDB's home page, and on a task
of a run named after a superevent finds the extra links to GraceDB's superevent page and
sky map (registered by plugins/gw_ops_plugin.py).  Heavy (starts the stack): run under
``flock /tmp/gw-ops-heavy.lock``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from gw_ops.airflow.links import superevent_file_url, superevent_page_url
from gw_ops.ops.airflow_api import plain
from gw_ops.ops.stack import airflow_login
from tests.fixtures.browser import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.stack]

#: A run id in the form of a Test superevent id (no such superevent exists: only the link
#: is under test, and the smoke DAG touches no superevent).
SUPEREVENT_RUN_ID = "TS230209zz"


def log_in(page, airflow_url: str, settings) -> None:
    user, password = airflow_login(settings)
    page.goto(f"{airflow_url}/")
    page.locator("input[name='username']").fill(user)
    page.locator("input[name='password']").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/auth/login"))


def test_operator_finds_the_dags_and_follows_the_graceDB_link(airflow_stack, browser_context,
                                                              tmp_path):
    settings = airflow_stack.settings
    airflow_url = settings.airflow_api_url.rstrip("/")
    page = browser_context.new_page()
    log_in(page, airflow_url, settings)

    page.goto(f"{airflow_url}/dags")
    for dag_id in ("gw_ops_smoke", "gw_ops_wait_for_label"):
        expect(page.get_by_role("link", name=dag_id, exact=True).first).to_be_visible()
    save_screenshot(page, tmp_path, "airflow-dag-list")

    gracedb_home = settings.gracedb_api_url.removesuffix("api/")
    page.get_by_role("button", name="Plugins").first.click()  # the nav bar's plugin menu
    nav_link = page.locator(f'a[href="{gracedb_home}"]')
    expect(nav_link).to_contain_text("GraceDB")
    save_screenshot(page, tmp_path, "airflow-nav-gracedb")
    with browser_context.expect_page() as opened:  # it opens in a new tab
        nav_link.click()
    gracedb = opened.value
    expect(gracedb).to_have_url(gracedb_home)
    expect(gracedb.get_by_role("heading", name="Superevents")).to_be_visible()
    save_screenshot(gracedb, tmp_path, "airflow-to-gracedb-home")


def test_tasks_of_a_superevent_run_link_to_its_graceDB_page(airflow_stack, browser_context,
                                                            tmp_path):
    settings = airflow_stack.settings
    airflow = airflow_stack.airflow()
    airflow.wait_for_dag("gw_ops_smoke")
    airflow.trigger("gw_ops_smoke", run_id=SUPEREVENT_RUN_ID)
    airflow.wait_run("gw_ops_smoke", SUPEREVENT_RUN_ID)
    task_id = airflow.task_instances("gw_ops_smoke", SUPEREVENT_RUN_ID)[0]["task_id"]
    links = plain(airflow.call(airflow.task_instances_api.get_extra_links, "gw_ops_smoke",
                               SUPEREVENT_RUN_ID, task_id))["extra_links"]
    assert links == {
        "GraceDB superevent": superevent_page_url(settings, SUPEREVENT_RUN_ID),
        "Sky map": superevent_file_url(settings, SUPEREVENT_RUN_ID, "bayestar.png")}

    airflow_url = settings.airflow_api_url.rstrip("/")
    page = browser_context.new_page()
    log_in(page, airflow_url, settings)
    # Airflow 3.3 draws a task's extra links on its Details tab, under "Extra Links": one
    # button-styled <a> per link, named by the link, opening another origin in a new tab
    page.goto(f"{airflow_url}/dags/gw_ops_smoke/runs/{SUPEREVENT_RUN_ID}/tasks/{task_id}/details")
    expect(page.get_by_text("Extra Links", exact=True)).to_be_visible()
    for name, url in links.items():
        link = page.get_by_role("link", name=name, exact=True)
        expect(link).to_have_attribute("href", url)
        expect(link).to_have_attribute("target", "_blank")
    save_screenshot(page, tmp_path, "airflow-task-extra-links")
