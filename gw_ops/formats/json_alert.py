"""The alert as JSON, in the shape of igwn-gwalert-schema v1 (the alerts sent over Kafka).

The sky map travels inside the alert as base64 text of the multi-order FITS file.

Examples
--------
>>> from gw_ops.formats.alert_content import AlertContent
>>> content = AlertContent(superevent_id="MS230101a", alert_type="Preliminary",
...                        serial_number=1, time_created="2023-01-01T00:01:00Z",
...                        event_time_gps=1356566418.5, far=1e-9, significant=True,
...                        group="CBC", pipeline="gstlal", search="MDC",
...                        instruments=("H1", "L1"))
>>> build_json_alert(content)["alert_type"]
'PRELIMINARY'
"""
from __future__ import annotations

import base64
from typing import Any

from gw_ops.formats.alert_content import (
    EARLY_WARNING,
    INITIAL,
    PRELIMINARY,
    RETRACTION,
    UPDATE,
    AlertContent,
)

#: ``alert_type`` of the JSON alert (igwn-gwalert-schema v1 enumeration symbols).
JSON_ALERT_TYPES: dict[str, str] = {
    EARLY_WARNING: "EARLYWARNING",  # the schema's enum spelling (GWCelery: 'earlywarning'.upper())
    PRELIMINARY: "PRELIMINARY",
    INITIAL: "INITIAL",
    UPDATE: "UPDATE",
    RETRACTION: "RETRACTION",
}


def build_json_alert(content: AlertContent) -> dict[str, Any]:
    """The alert as a JSON-ready dict in the shape of igwn-gwalert-schema v1.

    Parameters
    ----------
    content : AlertContent

    Returns
    -------
    dict
        ``superevent_id``, ``alert_type`` (``EARLY_WARNING``, ``PRELIMINARY``, ...),
        ``time_created``, ``event`` (None for a retraction; otherwise time, far [Hz],
        significant, instruments, group, pipeline, search, properties,
        classification, duration [s], central_frequency [Hz], skymap: base64 text of
        the multi-order FITS file or None), ``external_coinc`` (None or a dict) and
        ``urls`` (``gracedb``: the event page; ``skymap``: the sky map URL, an
        addition of gw-ops for consumers that prefer fetching the file).
    """
    urls = {"gracedb": content.event_page}
    if content.skymap_url:
        urls["skymap"] = content.skymap_url
    event = None
    if content.alert_type != RETRACTION:
        event = {
            "time": content.event_time_iso,
            "far": None if content.far is None else float(content.far),
            "significant": bool(content.significant),
            "instruments": list(content.instruments),
            "group": content.group,
            "pipeline": content.pipeline,
            "search": content.search,
            "properties": {k: float(v) for k, v in content.properties.items()},
            "classification": {k: float(v) for k, v in content.classification.items()},
            "duration": content.duration,
            "central_frequency": content.central_frequency,
            "skymap": (base64.b64encode(content.skymap_bytes).decode("ascii")
                       if content.skymap_bytes else None),
        }
    external = None
    if content.external_coinc is not None and content.alert_type != RETRACTION:
        coinc = content.external_coinc
        external = {
            "gcn_notice_id": int(coinc.gcn_notice_id),
            "ivorn": coinc.ivorn,
            "observatory": coinc.observatory,
            "search": coinc.search,
            "time_difference": float(coinc.time_difference),
            "time_coincidence_far": float(coinc.time_coincidence_far),
            "time_sky_position_coincidence_far": coinc.time_sky_position_coincidence_far,
            "combined_skymap": None,
        }
    return {
        "superevent_id": content.superevent_id,
        "alert_type": JSON_ALERT_TYPES[content.alert_type],
        "time_created": content.time_created,
        "event": event,
        "external_coinc": external,
        "urls": urls,
    }
