"""Transitional: the names of the old alerts module, now split (this file goes at the merge).

:mod:`gw_ops.formats.alert_content` (AlertContent, alert types, IVORNs),
:mod:`gw_ops.formats.voevent`, :mod:`gw_ops.formats.json_alert`,
:mod:`gw_ops.formats.circular`, :mod:`gw_ops.formats.gpstime`.
"""
from gw_ops.formats.alert_content import (  # noqa: F401
    ALERT_TYPES,
    CLASSIFICATION_KEYS,
    EARLY_WARNING,
    INITIAL,
    IVORN_PREFIX,
    PACKET_TYPES,
    PRELIMINARY,
    PROPERTY_KEYS,
    RETRACTION,
    UPDATE,
    AlertContent,
    ExternalCoinc,
    ivorn,
    role_for_superevent,
    voevent_filename,
)
from gw_ops.formats.circular import build_circular  # noqa: F401
from gw_ops.formats.gpstime import gps_to_utc_iso, utc_now_iso  # noqa: F401
from gw_ops.formats.json_alert import JSON_ALERT_TYPES, build_json_alert  # noqa: F401
from gw_ops.formats.voevent import (  # noqa: F401
    AUTHOR,
    VOEVENT_NAMESPACE,
    VOEVENT_SCHEMA_LOCATION,
    VOEVENT_XSD_PATH,
    XSI_NAMESPACE,
    build_voevent,
    parse_voevent,
    validate_voevent,
    voevent_params,
)
