"""Links from the Airflow UI to GraceDB's pages: the nav entry and task extra links.

A superevent's DAG runs are named after it (run id ``S261201a``, or ``S261201a`` followed
by a non-letter and more, e.g. ``S261201a__update_3``).  :class:`GraceDbSupereventLink`
and :class:`GraceDbSkymapLink` read the superevent id from the run id, so they need
nothing from the DAG: the plugin registers them as *global* operator extra links
(``AirflowPlugin.global_operator_extra_links``), which the API server evaluates for each
task instance it shows.  For a run whose id names no superevent they return ``""``, which
the UI shows as no link.  A DAG may also list them in an operator's
``operator_extra_links``; the task runner then stores the link in XCom when the task ends.

The URLs (:mod:`gw_ops.gracedb_urls`, re-exported here) are GraceDB's own page layout
(``<root>/superevents/<id>/view/``), so they point to the real GraceDB too when
``gracedb_url`` names it.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

from gw_ops.config import get_settings
from gw_ops.gracedb_urls import gracedb_home_url, superevent_file_url, superevent_page_url
from gw_ops.vocabulary import CATEGORY_PREFIX, SKYMAP_IMAGE_FILENAME

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

__all__ = ["GraceDbSkymapLink", "GraceDbSupereventLink", "gracedb_home_url",
           "superevent_file_url", "superevent_id_of_run", "superevent_page_url"]

#: A superevent id at the start of a run id: prefix (S, MS, TS), date YYMMDD, letters,
#: then the end or a character that is not a letter.
RUN_SUPEREVENT_ID = re.compile(
    rf"^(?P<sid>(?:{'|'.join(sorted(CATEGORY_PREFIX.values(), key=len, reverse=True))})"
    r"\d{6}[a-z]{1,8})(?![a-z])")


def superevent_id_of_run(run_id: str) -> str | None:
    """The superevent a run id names (``None`` for runs of other kinds)."""
    match = RUN_SUPEREVENT_ID.match(run_id or "")
    return match.group("sid") if match else None


class GraceDbSupereventLink(BaseOperatorLink):
    """Extra link "GraceDB superevent": the page of the superevent the run is named after."""

    name = "GraceDB superevent"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:
        superevent_id = superevent_id_of_run(ti_key.run_id)
        return superevent_page_url(get_settings(), superevent_id) if superevent_id else ""


class GraceDbSkymapLink(BaseOperatorLink):
    """Extra link "Sky map": the superevent's sky-map image (``bayestar.png``) in GraceDB."""

    name = "Sky map"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:
        superevent_id = superevent_id_of_run(ti_key.run_id)
        if not superevent_id:
            return ""
        return superevent_file_url(get_settings(), superevent_id, SKYMAP_IMAGE_FILENAME)
