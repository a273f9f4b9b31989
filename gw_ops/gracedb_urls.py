"""Addresses of GraceDB's pages and files for people: the links a run, an alert or the demo
hands to an operator.

GraceDB's own page layout (``<root>/superevents/<id>/view/``), so they point to the real
GraceDB too when ``gracedb_url`` names it.  They are built from the public API root
(``gracedb_public_url``, else the one the pipeline uses): people follow them, not the
pipeline.  Shared by the Airflow links
(:mod:`gw_ops.airflow.links`) and the superevent runs' story
(:mod:`gw_ops.handlers.superevent_runs`); light at import (the Airflow plugin loads it).
"""
from __future__ import annotations

from urllib.parse import quote

from gw_ops.config import Settings


def gracedb_home_url(settings: Settings) -> str:
    """GraceDB's home page (the API root without ``api/``)."""
    return settings.gracedb_public_api_url.removesuffix("api/")


def superevent_page_url(settings: Settings, superevent_id: str) -> str:
    """GraceDB's page of a superevent (the ``EventPage`` of its VOEvents)."""
    return f"{gracedb_home_url(settings)}superevents/{quote(superevent_id, safe='')}/view/"


def superevent_file_url(settings: Settings, superevent_id: str, filename: str) -> str:
    """The newest version of a superevent's file in the GraceDB API."""
    return (f"{settings.gracedb_public_api_url}superevents/{quote(superevent_id, safe='')}/files/"
            f"{quote(filename, safe='')}")


def event_file_url(settings: Settings, graceid: str, filename: str) -> str:
    """The newest version of a G event's file in the GraceDB API."""
    return (f"{settings.gracedb_api_url}events/{quote(graceid, safe='')}/files/"
            f"{quote(filename, safe='')}")
