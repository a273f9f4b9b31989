"""JSON alerts against igwn-gwalert-schema (issue 13 items 5 and 8): every alert type
gw-ops builds validates; a rejected alert raises with the schema's reason."""
from __future__ import annotations

import pytest

from gw_ops.formats import alert_content, json_alert
from gw_ops.formats.schema import AlertSchemaError, validate_json_alert
from tests.test_alerts import make_content


@pytest.mark.parametrize("alert_type", alert_content.ALERT_TYPES)
def test_every_alert_type_validates(alert_type):
    alert = json_alert.build_json_alert(make_content(alert_type=alert_type))
    validate_json_alert(alert)


def test_early_warning_uses_the_schema_spelling():
    alert = json_alert.build_json_alert(make_content(alert_type=alert_content.EARLY_WARNING))
    assert alert["alert_type"] == "EARLYWARNING"
    validate_json_alert(alert)


@pytest.mark.parametrize("change, where", [
    ({"alert_type": "EARLY_WARNING"}, "alert_type"),   # the old spelling
    ({"superevent_id": 123}, "superevent_id"),
])
def test_rejected_alert_names_the_reason(change, where):
    alert = {**json_alert.build_json_alert(make_content()), **change}
    with pytest.raises(AlertSchemaError, match=f"violates igwn-gwalert-schema: {where}"):
        validate_json_alert(alert)


def test_installed_schema_has_the_earlywarning_enum():
    import json
    from importlib import resources
    schema = json.loads(resources.files("igwn_gwalert_schema").joinpath(
        "igwn.alerts.Alert.schema.json").read_text())
    assert "EARLYWARNING" in schema["properties"]["alert_type"]["enum"]


@pytest.mark.parametrize("space_far", [None, 1e-12])
@pytest.mark.parametrize("alert_type", alert_content.ALERT_TYPES)
def test_alerts_with_a_raven_coincidence_validate(alert_type, space_far):
    """The significant Preliminary a RAVEN coincidence sends carries ``external_coinc``."""
    coinc = alert_content.ExternalCoinc(
        gcn_notice_id=0, ivorn="ivo://nasa.gsfc.gcn/Fermi#GBM_Gnd_Pos_1", observatory="Fermi",
        search="GRB", time_difference=0.5, time_coincidence_far=1e-11,
        time_sky_position_coincidence_far=space_far)
    validate_json_alert(json_alert.build_json_alert(make_content(alert_type=alert_type,
                                                             external_coinc=coinc)))
