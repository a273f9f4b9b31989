"""Links from the Airflow UI to GraceDB: which run ids name a superevent, the URLs, and the
plugin's registration (the Airflow UI itself: tests/test_browser_airflow.py)."""
from __future__ import annotations

import importlib.util

import pytest
from airflow.sdk.types import TaskInstanceKey

from gw_ops.airflow.links import (
    GraceDbSkymapLink,
    GraceDbSupereventLink,
    gracedb_home_url,
    superevent_id_of_run,
    superevent_page_url,
)
from gw_ops.config import get_settings
from tests.helpers import REPO_ROOT


@pytest.mark.parametrize("run_id, superevent_id", [
    ("S261201a", "S261201a"),
    ("S261201abc", "S261201abc"),
    ("MS261201b__preferred_G12", "MS261201b"),
    ("TS261201c_update_2", "TS261201c"),
    ("S261201a2", "S261201a"),
    ("asset_triggered__2026-12-01T07:00:00+00:00", None),
    ("manual__S261201a", None),
    ("scheduled__2026-12-01", None),
    ("S26120a", None),     # five date digits
    ("S261201", None),     # no letters
    ("S261201A", None),    # ids use lower-case letters
    ("XS261201a", None),
    ("", None),
])
def test_superevent_id_of_run(run_id, superevent_id):
    assert superevent_id_of_run(run_id) == superevent_id


def test_urls_follow_graceDB_page_layout_for_local_and_real_graceDB():
    local = get_settings(env={}, gracedb_port=8123)
    assert gracedb_home_url(local) == "http://127.0.0.1:8123/"
    assert superevent_page_url(local, "S261201a") == "http://127.0.0.1:8123/superevents/S261201a/view/"
    real = get_settings(env={}, gracedb_url="https://gracedb.ligo.org/api/")
    assert superevent_page_url(real, "S190425z") == "https://gracedb.ligo.org/superevents/S190425z/view/"


def test_extra_links_answer_for_superevent_runs_only(monkeypatch):
    monkeypatch.setenv("GW_OPS_GRACEDB_PORT", "8124")
    superevent_run = TaskInstanceKey("superevent", "alert", "S261201a", 1, -1)
    other_run = TaskInstanceKey("lane", "drain", "asset_triggered__2026-12-01", 1, -1)
    assert GraceDbSupereventLink().get_link(None, ti_key=superevent_run) == \
        "http://127.0.0.1:8124/superevents/S261201a/view/"
    assert GraceDbSkymapLink().get_link(None, ti_key=superevent_run) == \
        "http://127.0.0.1:8124/api/superevents/S261201a/files/bayestar.png"
    assert GraceDbSupereventLink().get_link(None, ti_key=other_run) == ""
    assert GraceDbSkymapLink().get_link(None, ti_key=other_run) == ""


def test_plugin_registers_the_nav_entry_and_global_extra_links(monkeypatch):
    monkeypatch.setenv("GW_OPS_GRACEDB_PORT", "8125")
    spec = importlib.util.spec_from_file_location("gw_ops_plugin_under_test",
                                                  REPO_ROOT / "plugins" / "gw_ops_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.GwOpsPlugin
    assert {v["name"]: v["href"] for v in plugin.external_views} == {
        "GraceDB": "http://127.0.0.1:8125/", "GraceDB API docs": "http://127.0.0.1:8125/api/docs"}
    # one nav entry alone is drawn by Airflow 3.3 as a <button> that opens nothing
    assert len([v for v in plugin.external_views if v["destination"] == "nav"]) >= 2
    assert sorted(link.name for link in plugin.global_operator_extra_links) == \
        ["GraceDB superevent", "Sky map"]
