"""The local GraceDB's ``createVOEvent``: its form fields mapped onto the shared notice builder.

GraceDB writes the LVK GCN notice itself when a client asks for one; the notice is the
same document the pipeline sends, so :func:`build_voevent` only translates the form
fields into an :class:`~gw_ops.formats.alert_content.AlertContent` and calls
:func:`gw_ops.formats.voevent.build_voevent`.
"""
from __future__ import annotations

from typing import Any

from gw_ops.formats import alert_content, voevent

#: GraceDB's VOEvent type codes and the alert types they stand for.
ALERT_TYPE_OF_CODE = {"PR": alert_content.PRELIMINARY, "IN": alert_content.INITIAL,
                      "UP": alert_content.UPDATE, "RE": alert_content.RETRACTION,
                      "EW": alert_content.EARLY_WARNING}

#: Form fields holding classification probabilities, and the notice param each fills.
_CLASSIFICATION_FIELDS = {key: key for key in alert_content.CLASSIFICATION_KEYS}
_PROPERTY_FIELDS = {"ProbHasNS": "HasNS", "ProbHasRemnant": "HasRemnant",
                    "HasMassGap": "HasMassGap"}


def ivorn_for(object_id: str, number: int, voevent_type: str) -> str:
    """IVORN of the ``number``-th VOEvent of an object, e.g. ``ivo://gwnet/LVC#S1-1-Preliminary``."""
    return alert_content.ivorn(object_id, number, ALERT_TYPE_OF_CODE[voevent_type])


def _flag(options: dict[str, Any], name: str) -> bool:
    """A form flag: ``1``, ``true`` or ``yes`` (any case) is set; anything else is not."""
    return str(options.get(name, "")).lower() in ("1", "true", "yes")


def _probabilities(options: dict[str, Any], fields: dict[str, str]) -> dict[str, float]:
    """The probabilities the form gives, under their notice param names."""
    return {param: float(options[field]) for field, param in fields.items()
            if options.get(field) is not None}


def build_voevent(*, object_id: str, number: int, voevent_type: str, t_0: float,
                  event_page: str, far: float | None, instruments: str, group: str,
                  pipeline: str, search: str, options: dict[str, Any], skymap_url: str | None,
                  created_iso: str, role: str) -> bytes:
    """VOEvent XML (UTF-8 bytes) for one notice.

    Parameters
    ----------
    object_id : str
        Superevent (or event) id.
    number : int
        Serial number of this VOEvent for the object.
    voevent_type : str
        Type code: PR, IN, UP, RE or EW.
    t_0 : float
        Event time (GPS s).
    event_page : str
        Web page of the object.
    far : float or None
        False alarm rate of the preferred event (Hz); None leaves the FAR out.
    instruments : str
        Comma-separated detectors, e.g. ``"H1,L1"``.
    group, pipeline, search : str
        Of the preferred event.
    options : dict
        Client fields: internal, open_alert, hardware_inj, CoincComment,
        raven_coinc, skymap_type, ProbHasNS, ProbHasRemnant, BNS, NSBH, BBH,
        Terrestrial, HasMassGap, significant (a flag; set when absent).
    skymap_url : str or None
        URL of the sky map file.
    created_iso : str
        Creation time, UTC ISO 8601.
    role : str
        ``observation`` or ``test``.
    """
    content = alert_content.AlertContent(
        superevent_id=object_id, alert_type=ALERT_TYPE_OF_CODE[voevent_type],
        serial_number=number, time_created=created_iso, event_time_gps=t_0,
        far=None if far is None else float(far),
        significant=_flag(options, "significant") if "significant" in options else True,
        group=group, pipeline=pipeline, search=search,
        instruments=tuple(name.strip() for name in (instruments or "").split(",") if name.strip()),
        skymap_url=skymap_url, skymap_name=options.get("skymap_type") or "",
        classification=_probabilities(options, _CLASSIFICATION_FIELDS),
        properties=_probabilities(options, _PROPERTY_FIELDS),
        coinc_comment=str(options.get("CoincComment") or "") if _flag(options, "raven_coinc") else None,
        role=role, event_page=event_page, hardware_injection=_flag(options, "hardware_inj"),
        open_alert=_flag(options, "open_alert"), internal=_flag(options, "internal"))
    return voevent.build_voevent(content)
