"""The GraceDB service: request handling on top of a :class:`~gw_ops.local_gracedb.store.Store`,
one section per resource, joined into :class:`GraceDbService`.

Every method takes plain values (the HTTP layer in :mod:`gw_ops.local_gracedb.routes`
has parsed the request and checked the caller's role) and returns JSON-ready dicts
or raises :class:`~gw_ops.local_gracedb.errors.ApiError`.  Methods block (database,
files), so the routes run them in the thread pool.
"""
from __future__ import annotations

from gw_ops.local_gracedb.service.annotations import AnnotationsSection
from gw_ops.local_gracedb.service.events import EventsSection
from gw_ops.local_gracedb.service.exposure import ExposureSection
from gw_ops.local_gracedb.service.labels import LabelsSection
from gw_ops.local_gracedb.service.signoffs import SignoffsSection
from gw_ops.local_gracedb.service.superevents import SupereventsSection
from gw_ops.local_gracedb.service.voevents import VOEventsSection


class GraceDbService(EventsSection, SupereventsSection, AnnotationsSection, LabelsSection,
                     VOEventsSection, SignoffsSection, ExposureSection):
    """All sections of the service over one store (``GraceDbService(settings, store)``)."""


__all__ = ["GraceDbService"]
