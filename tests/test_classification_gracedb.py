"""p_astro of events as the local GraceDB serves them (the dict the openmp lane passes)."""
from __future__ import annotations

import pytest

from gw_ops.mock.events import load_mock_event
from gw_ops.science.classification import compute_p_astro, p_astro, ranking_instruments
from tests.coinc_factory import coinc_xml


def test_pycbc_event_from_gracedb_gets_its_snr_capped(gracedb_service):
    """PyCBC H1L1 below 3.2e-10 Hz: the library caps SNR 33 to 10 (GWCelery's docstring
    example inputs), which needs the event's pipeline and detectors to come through."""
    client = gracedb_service.client()
    graceid = client.create_event(
        "CBC", "pycbc", "coinc.xml", search="AllSky",
        filecontents=coinc_xml(gpstime=1_400_000_123.5, snr=33.0, far=8e-11, pipeline="pycbc",
                               masses=(1.77, 1.07))).json()["graceid"]
    event = client.event(graceid).json()
    assert ranking_instruments(event) == {"H1", "L1"}
    result = p_astro(event)
    assert result == compute_p_astro(33.0, 8e-11, 1.77, 1.07, "pycbc", {"H1", "L1"})
    assert {k: round(v, 3) for k, v in result.items()} == {
        "BNS": 0.999, "NSBH": 0.0, "BBH": 0.0, "Terrestrial": 0.001}


def test_mock_bns_from_gracedb(gracedb_service):
    client = gracedb_service.client()
    mock = load_mock_event(0, now_gps=1_400_000_456)
    graceid = client.create_event("CBC", mock.pipeline, "coinc.xml", search=mock.search,
                                  filecontents=mock.coinc_xml).json()["graceid"]
    result = p_astro(client.event(graceid).json())
    assert result == pytest.approx(p_astro(mock.coinc_xml, pipeline="gstlal"), rel=1e-9)
    assert result["BNS"] > 0.999
