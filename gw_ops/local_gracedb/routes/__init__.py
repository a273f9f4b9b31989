"""HTTP routes of the local GraceDB, one FastAPI ``APIRouter`` per resource.

Routes parse the request, check the caller's role and hand plain values to the
:class:`~gw_ops.local_gracedb.service.GraceDbService` in the thread pool.
"""
from __future__ import annotations

from gw_ops.local_gracedb.routes import (
    api_root,
    events,
    files,
    labels,
    logs,
    signoffs,
    superevents,
    voevents,
)

#: Every router of the app, in the order they are included.
ROUTERS = [api_root.router, events.router, superevents.router, logs.router, files.router,
           labels.router, voevents.router, signoffs.router]
