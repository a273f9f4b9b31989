"""GCN Kafka JSON notices (SVOM, IceCube, targeted Fermi/Swift...) as external notices.

GWCelery 3.0.0 turns the JSON notices of GCN's Kafka streams into GraceDB external
events; this module makes, from one such notice (a dict), the same
:class:`~gw_ops.rules.external.ExternalNotice` that the VOEvent path makes, so the rest
of the external-trigger handler (event, ``NOT_GRB``, sky map, RAVEN) is shared.  The
rules are GWCelery 3.0.0's, written for gw-ops:

* **Pipeline**: ``mission``; else CHIME when ``$schema`` names it; else instrument
  ``ECLAIRs`` gives SVOM and ``WXT`` EinsteinProbe.
* **Search**: ``MDC`` when ``is_mdc``; FRB for CHIME; ``SubGRBTargeted`` when the
  instrument says ``targeted`` or ``guano``; GRB for Fermi, Swift and SVOM; HEN for
  IceCube.
* **Group**: ``alert_tense`` ``test`` is a test notice (``exttrig_test_notices``).
* **Trigger id**: the ``id`` list joined with ``_``.
* **Time**: ``trigger_time``; a targeted trigger's centre (+ half its ``rate_duration``
  or ``image_duration``).
* **NOT_GRB**: a retraction; a FAR above the targeted-search GRB threshold of the
  instrument; a Fermi GRB notice whose ``classification.GRB`` is below 0.5 (or absent);
  ``importance`` or ``p_astro`` below 0.5; a GBM ``initial_alert``; a known (repeating)
  CHIME source.
* **Notice type**: ``PIPELINE_INSTRUMENT_SUBTYPE`` (or ``..._ALERTTYPE``), e.g.
  ``ICECUBE_IC86_INITIAL`` or ``SVOM_ECLAIRS_UPDATE``.

A JSON notice has no IVORN; gw-ops names it ``gcn-kafka://<pipeline>/<instrument>#<id>/
<alert type>/<record number or alert time>`` -- unique per notice, so it serves as the
idempotency key of the event's log like a VOEvent's IVORN.

Position: ``ra``/``dec``/``ra_dec_error`` (deg; 90 % error circle, or an error ellipse
``[semi-major, semi-minor, rotation]`` as CHIME sends it, taken as the circle of its
semi-major axis, which contains it).  GWCelery downloads
``healpix_url`` when there is one; gw-ops makes the sky map from the position (no
network access from the pipeline's workers).
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from gw_ops.config import Settings
from gw_ops.formats.gpstime import gps_to_utc, utc_to_gps
from gw_ops.rules.external import ExternalNotice, InvalidNotice
from gw_ops.rules.raven_publish import TARGETED_GRB_FAR_THRESHOLD_HZ, TARGETED_SEARCH
from gw_ops.vocabulary import MDC_SEARCH

#: Probability (``classification.GRB``, ``importance``, ``p_astro``) below which a
#: JSON notice is vetoed as not astrophysical (GWCelery's ``P_ASTRO_THRESH``).
ASTROPHYSICAL_PROBABILITY_MIN = 0.5
#: Largest JSON notice accepted (bytes): GCN notices are a few kB.
MAX_JSON_NOTICE_BYTES = 1024 * 1024


def _pipeline(alert: Mapping[str, Any]) -> str:
    instrument = alert.get("instrument")
    if instrument is None:
        if "chime" in str(alert.get("$schema", "")).lower():
            return "CHIME"
        raise InvalidNotice("JSON notice has no instrument")
    pipeline = alert.get("mission")
    if pipeline:
        return str(pipeline)
    by_instrument = {"eclairs": "SVOM", "wxt": "EinsteinProbe"}
    try:
        return by_instrument[str(instrument).lower()]
    except KeyError:
        raise InvalidNotice(f"JSON notice names no mission and instrument {instrument!r} "
                            "is not one gw-ops knows") from None


def _search(alert: Mapping[str, Any], pipeline: str) -> str:
    instrument = str(alert.get("instrument") or "").lower()
    if alert.get("is_mdc"):
        return MDC_SEARCH
    if pipeline == "CHIME":
        return "FRB"
    if "targeted" in instrument or "guano" in instrument:
        return TARGETED_SEARCH
    if pipeline in ("Fermi", "Swift", "SVOM"):
        return "GRB"
    if pipeline == "IceCube":
        return "HEN"
    raise InvalidNotice(f"no GraceDB search for a JSON notice of {pipeline}")


def _gps(text: Any) -> tuple[str, float]:
    if not isinstance(text, str) or not text.strip():
        raise InvalidNotice("JSON notice has no trigger_time")
    iso = text.strip()
    try:
        when = dt.datetime.fromisoformat(iso.removesuffix("Z"))
    except ValueError:
        raise InvalidNotice(f"malformed trigger_time {iso!r}") from None
    when = when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else \
        when.astimezone(dt.timezone.utc)
    return iso, utc_to_gps(when)


def _number(alert: Mapping[str, Any], key: str) -> float | None:
    value = alert.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise InvalidNotice(f"JSON notice field {key} = {value!r} is not a finite number")
    return float(value)


def _error_radius(alert: Mapping[str, Any]) -> float | None:
    """``ra_dec_error`` (deg) as one radius: a number, or the semi-major axis of an ellipse.

    GCN's schema allows ``[a, b, rotation]`` (CHIME); the circle of radius ``a`` contains
    that ellipse, so the sky map made from it does not lose the source.
    """
    value = alert.get("ra_dec_error")
    if isinstance(value, (list, tuple)):
        if len(value) != 3:
            raise InvalidNotice(f"JSON notice field ra_dec_error = {value!r} is neither a radius "
                                "nor an ellipse [a, b, rotation]")
        numbers = [_number({"ra_dec_error": item}, "ra_dec_error") for item in value]
        if None in numbers:
            raise InvalidNotice(f"JSON notice field ra_dec_error = {value!r} has an empty entry")
        return max(numbers[:2])
    return _number(alert, "ra_dec_error")


def notice_type_of(alert: Mapping[str, Any], pipeline: str) -> str:
    """``PIPELINE_INSTRUMENT_SUBTYPE`` or ``PIPELINE_INSTRUMENT_ALERTTYPE`` of a notice."""
    name = pipeline.upper()
    if alert.get("instrument") is not None:
        name += "_" + str(alert["instrument"]).upper().replace("-", "_")
    if alert.get("subtype") is not None:
        name += "_" + str(alert["subtype"]).upper()
    elif alert.get("alert_type") is not None:
        name += "_" + str(alert["alert_type"]).upper()
    return name


def json_not_grb_reasons(alert: Mapping[str, Any], pipeline: str, search: str,
                         far_hz: float | None) -> tuple[str, ...]:
    """Why a JSON notice's trigger gets ``NOT_GRB`` (empty: not vetoed)."""
    reasons = []
    if str(alert.get("alert_type") or "").lower() == "retraction":
        reasons.append("retraction")
    threshold = TARGETED_GRB_FAR_THRESHOLD_HZ.get(pipeline)
    if far_hz is not None and threshold is not None and far_hz > threshold:
        reasons.append(f"FAR {far_hz:g} Hz above the {pipeline} GRB threshold {threshold:g} Hz")
    classification = alert.get("classification")
    if classification is not None and pipeline == "Fermi" and search == "GRB":
        grb = (classification or {}).get("GRB") if isinstance(classification, Mapping) else None
        if grb is None or grb < ASTROPHYSICAL_PROBABILITY_MIN:
            reasons.append(f"Fermi GBM classification GRB {grb}")
    elif alert.get("importance") is not None:
        if _number(alert, "importance") < ASTROPHYSICAL_PROBABILITY_MIN:
            reasons.append(f"importance {alert['importance']}")
    elif alert.get("p_astro") is not None:
        if _number(alert, "p_astro") < ASTROPHYSICAL_PROBABILITY_MIN:
            reasons.append(f"p_astro {alert['p_astro']}")
    if str(alert.get("subtype") or "").lower() == "initial_alert":
        reasons.append("first Fermi GBM alert: not classified yet")
    if alert.get("known_source") is not None:
        reasons.append(f"known source {alert['known_source']}")
    return tuple(reasons)


def notice_from_json(alert: Mapping[str, Any], settings: Settings) -> ExternalNotice:
    """The :class:`ExternalNotice` of one GCN Kafka JSON notice (see the module docstring).

    Parameters
    ----------
    alert : dict
        The decoded JSON notice.
    settings : Settings
        Unused today (the vetoes of JSON notices have no settings); kept so both notice
        paths take the same arguments.

    Raises
    ------
    InvalidNotice
        Not an object, no instrument or mission, no id, no or malformed trigger time,
        non-numeric or out-of-sky position.
    """
    del settings
    if not isinstance(alert, Mapping):
        raise InvalidNotice("JSON notice is not an object")
    pipeline = _pipeline(alert)
    search = _search(alert, pipeline)
    ids = alert.get("id")
    ids = ids if isinstance(ids, list) else [ids] if ids not in (None, "") else []
    if not ids:
        raise InvalidNotice("JSON notice has no id")
    trigger_id = "_".join(str(part) for part in ids)
    event_time, gpstime = _gps(alert.get("trigger_time"))
    if search == TARGETED_SEARCH:
        duration = next((alert[key] for key in ("rate_duration", "image_duration")
                         if key in alert), 0.0)
        try:
            gpstime += 0.5 * float(duration)
        except (TypeError, ValueError):
            raise InvalidNotice(f"duration {duration!r} is not a number") from None
        event_time = gps_to_utc(gpstime).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ra, dec, error = _number(alert, "ra"), _number(alert, "dec"), _error_radius(alert)
    if ra is not None and dec is not None:
        if not (0.0 <= ra <= 360.0 and -90.0 <= dec <= 90.0):
            raise InvalidNotice(f"position RA={ra:g}, Dec={dec:g} deg is outside the sky")
        if error is None or not 0.0 < error <= 180.0:
            ra = dec = error = None  # no usable error region: no sky map
    else:
        ra = dec = error = None
    far_hz = _number(alert, "far")
    notice_type = notice_type_of(alert, pipeline)
    tense = str(alert.get("alert_tense") or "current").lower()
    key = alert.get("record_number", alert.get("alert_datetime", ""))
    ivorn = (f"gcn-kafka://{pipeline}/{alert.get('instrument') or ''}#{trigger_id}/"
             f"{alert.get('alert_type') or ''}/{key}")
    return ExternalNotice(
        notice_type=notice_type, ivorn=ivorn, role="test" if tense == "test" else "observation",
        pipeline=pipeline, search=search, trigger_id=trigger_id, event_time=event_time,
        gpstime=gpstime, ra=ra, dec=dec, error_radius=error, far_hz=far_hz,
        not_grb_reasons=json_not_grb_reasons(alert, pipeline, search, far_hz),
        payload_format="json")


def gracedb_payload(alert: Mapping[str, Any], notice: ExternalNotice) -> dict[str, Any]:
    """The JSON uploaded to GraceDB: the notice itself, with a targeted trigger's time
    replaced by its centre (as GWCelery uploads it)."""
    payload = dict(alert)
    if notice.search == TARGETED_SEARCH:
        payload["trigger_time"] = notice.event_time
    return payload


__all__ = ["notice_from_json", "gracedb_payload", "json_not_grb_reasons", "notice_type_of",
           "MAX_JSON_NOTICE_BYTES"]
