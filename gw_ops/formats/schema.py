"""Validation of outgoing JSON alerts against igwn-gwalert-schema (the PyPI package).

The schema is the JSON Schema the package ships (``igwn.alerts.Alert.schema.json``,
draft 2020-12); nothing is written by hand here.  :func:`validate_json_alert` runs in
the alert sender before an alert is published: an alert that the schema rejects is
never sent.  Import is light (jsonschema loads on first use).
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

#: Package and file of the schema.
SCHEMA_PACKAGE = "igwn_gwalert_schema"
SCHEMA_FILE = "igwn.alerts.Alert.schema.json"


class AlertSchemaError(ValueError):
    """A JSON alert that igwn-gwalert-schema rejects (a bug in gw-ops: fails red).

    Parameters
    ----------
    reason : str
        Where and why the schema rejects it (kept as ``.reason``).
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_FILE).read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def validate_json_alert(alert: dict[str, Any]) -> None:
    """Check one JSON alert against igwn-gwalert-schema.

    Parameters
    ----------
    alert : dict
        The alert as :func:`gw_ops.formats.json_alert.build_json_alert` makes it.

    Raises
    ------
    AlertSchemaError
        Naming every violation (JSON path and message), when the schema rejects it.
    """
    errors = sorted(_validator().iter_errors(alert), key=lambda error: list(error.path))
    if errors:
        details = "; ".join(
            f"{'/'.join(str(part) for part in error.path) or '(root)'}: {error.message}"
            for error in errors[:5])
        raise AlertSchemaError(
            f"JSON alert {alert.get('superevent_id', '?')} {alert.get('alert_type', '?')} "
            f"violates igwn-gwalert-schema: {details}")


__all__ = ["AlertSchemaError", "validate_json_alert", "SCHEMA_PACKAGE", "SCHEMA_FILE"]
