"""RAVEN windows, joint FARs, significance, and external sky maps (no services)."""
from __future__ import annotations

import math

import pytest

from gw_ops.config import get_settings
from gw_ops.handlers import raven as raven_handler
from gw_ops.rules import raven
from gw_ops.science import ext_skymaps

SETTINGS = get_settings(env={})
YEAR = 365 * 86400  # GWCelery's and ligo-raven's year


# pipeline, search, GW kind, window of t_ext - t_gw (s)
# t_ext - t_gw: a GRB may follow the merger by up to 5 s (see the raven_window_* settings)
WINDOWS = [
    ("Fermi", "GRB", "cbc", (-1, 5)),
    ("Swift", "GRB", "cbc", (-1, 5)),
    ("INTEGRAL", "GRB", "burst", (-60, 600)),
    ("Fermi", "MDC", "cbc", (-1, 5)),
    ("Fermi", "SubGRB", "cbc", (-1, 11)),
    ("Swift", "SubGRB", "burst", (-10, 20)),
    ("INTEGRAL", "SubGRB", "cbc", None),
    ("IceCube", "HEN", "cbc", (-10, 10)),
    ("IceCube", "HEN", "burst", (-500, 500)),
    ("SNEWS", "Supernova", "cbc", (-10, 10)),
    ("SNEWS", "Supernova", "burst", (-10, 10)),
]


@pytest.mark.parametrize("pipeline,search,kind,window", WINDOWS)
def test_coincidence_windows(pipeline, search, kind, window):
    assert raven.coincidence_window(SETTINGS, pipeline, search, kind) == window


def test_windows_and_rates_come_from_settings():
    settings = get_settings(env={"GW_OPS_RAVEN_WINDOW_GRB_CBC": "-2,3",
                                 "GW_OPS_RAVEN_RATE_GRB_PER_YEAR": "100"})
    assert raven.coincidence_window(settings, "Fermi", "GRB", "cbc") == (-2, 3)
    assert raven.external_rate_hz(settings, "GRB") == pytest.approx(100 / YEAR)
    with pytest.raises(ValueError):
        raven.parse_window(("3", "-2"))


@pytest.mark.parametrize("search,per_year", [("GRB", 305), ("MDC", 305), ("SubGRB", 370),
                                             ("HEN", 15), ("Supernova", None)])
def test_external_rates(search, per_year):
    rate = raven.external_rate_hz(SETTINGS, search)
    assert rate == (None if per_year is None else pytest.approx(per_year / YEAR))


# window (s), rate per year, GW FAR (Hz), overlap, temporal FAR (Hz), space-time FAR (Hz)
FARS = [
    ((-5, 1), 325, 1e-7, None, 6 * 325 / YEAR * 1e-7, None),
    ((-5, 1), 325, 1e-7, 10.0, 6 * 325 / YEAR * 1e-7, 6 * 325 / YEAR * 1e-8),
    ((-600, 60), 325, 1e-9, 0.5, 660 * 325 / YEAR * 1e-9, 2 * 660 * 325 / YEAR * 1e-9),
    ((-10, 10), 15, 3e-8, 0.0, 20 * 15 / YEAR * 3e-8, None),
]


@pytest.mark.parametrize("window,per_year,gw_far,overlap,temporal,spatial", FARS)
def test_joint_fars(window, per_year, gw_far, overlap, temporal, spatial):
    t = raven.temporal_coincidence_far(window, per_year / YEAR, gw_far)
    assert t == pytest.approx(temporal, rel=1e-12)
    s = raven.spacetime_coincidence_far(t, overlap)
    assert s == (None if spatial is None else pytest.approx(spatial, rel=1e-12))


def superevent(t0=1e9, far=1e-10, group="CBC", pipeline="gstlal", search="AllSky",
               category="Production"):
    return {"superevent_id": "S1", "t_0": t0, "far": far, "category": category,
            "preferred_event": "G1",
            "preferred_event_data": {"graceid": "G1", "group": group, "pipeline": pipeline,
                                     "search": search, "far": far}}


def external(gpstime, pipeline="Fermi", search="GRB", group="External", labels=()):
    return {"graceid": "E1", "gpstime": gpstime, "pipeline": pipeline, "search": search,
            "group": group, "labels": list(labels), "superevent": None}


# dt = t_ext - t_gw, pipeline, search, GW group, coincident?
EVALUATE = [
    (-0.5, "Fermi", "GRB", "CBC", True),
    (5.0, "Fermi", "GRB", "CBC", True),
    (-1.0, "Swift", "GRB", "CBC", True),
    (-1.5, "Fermi", "GRB", "CBC", False),
    (5.5, "Fermi", "GRB", "CBC", False),
    (300, "Fermi", "GRB", "Burst", True),
    (10.5, "Fermi", "SubGRB", "CBC", True),
    (15, "Swift", "SubGRB", "CBC", True),
    (15, "Fermi", "SubGRB", "CBC", False),
    (9, "IceCube", "HEN", "CBC", True),
    (400, "IceCube", "HEN", "Burst", True),
    (11, "SNEWS", "Supernova", "Burst", False),
]


@pytest.mark.parametrize("dt,pipeline,search,group,coincident", EVALUATE)
def test_evaluate_windows(dt, pipeline, search, group, coincident):
    pipeline_gw = "cwb" if group == "Burst" else "gstlal"
    se = superevent(group=group, pipeline=pipeline_gw)
    result = raven.evaluate(se, external(1e9 + dt, pipeline, search), SETTINGS)
    assert (result is not None) == coincident
    if result is not None:
        assert result.dt == pytest.approx(dt)


def test_grb_half_second_before_cbc_temporal_far():
    """The integration test's expectation, computed by hand."""
    result = raven.evaluate(superevent(far=1e-9), external(1e9 - 0.5), SETTINGS)
    assert result.temporal_coinc_far == pytest.approx(6 * 325 / YEAR * 1e-9)
    assert result.spatiotemporal_coinc_far is None
    assert not result.publishable  # no sky maps yet


def test_categories_pair_only_with_their_own():
    assert raven.evaluate(superevent(category="MDC"), external(1e9), SETTINGS) is None
    assert raven.evaluate(superevent(category="MDC"), external(1e9, search="MDC"),
                          SETTINGS) is not None
    assert raven.evaluate(superevent(), external(1e9, search="MDC"), SETTINGS) is None
    assert raven.evaluate(superevent(category="Test"), external(1e9, group="Test"),
                          SETTINGS) is not None


# GW FAR (Hz), overlap, ext labels, search, significant?, publishable?
# CBC all-sky: trials t = 5, threshold 1/2592000 Hz (GWCelery 2.5.0); FAR x t x (t - 1).
SIGNIFICANCE = [
    (1e-5, 100.0, (), "GRB", True, True),          # 6*305/yr*1e-5/100*20 = 1.2e-11
    (1e-5, None, (), "GRB", True, False),          # significant but no sky maps
    (1e-5, 100.0, ("NOT_GRB",), "GRB", True, False),
    (1e-5, 100.0, ("RAVEN_ALERT",), "GRB", True, False),  # published before
    (1e-5, 100.0, (), "SubGRB", True, False),
    (1.0, 1.0, (), "GRB", False, False),           # 6*305/yr*20 = 1.2e-3 Hz
]


@pytest.mark.parametrize("gw_far,overlap,labels,search,significant,publishable", SIGNIFICANCE)
def test_significance(gw_far, overlap, labels, search, significant, publishable):
    result = raven.evaluate(superevent(far=gw_far), external(1e9, search=search, labels=labels),
                            SETTINGS, overlap=overlap)
    assert result.significant == significant
    assert result.publishable == publishable
    assert result.trials_factor == 5
    assert result.significant_far_threshold == pytest.approx(1 / 2592000)


def test_snews_is_judged_on_the_gw_far_and_pairs_with_bursts_only():
    burst = superevent(far=1e-9)
    burst["preferred_event_data"] = {**burst["preferred_event_data"], "group": "Burst",
                                     "pipeline": "CWB"}
    result = raven.evaluate(burst, external(1e9, "SNEWS", "Supernova"), SETTINGS)
    # Burst all-sky: t = 2; published when GW FAR x t < 1/day
    assert result.temporal_coinc_far is None and result.far_with_trials == pytest.approx(2e-9)
    assert result.significant_far_threshold == pytest.approx(1 / 86400)
    assert result.publishable
    assert raven.evaluate(superevent(far=1e-9), external(1e9, "SNEWS", "Supernova"),
                          SETTINGS) is None  # a CBC superevent: no SNEWS search


def test_preference_key():
    base = raven.evaluate(superevent(), external(1e9), SETTINGS, overlap=2.0)
    import dataclasses
    sub = dataclasses.replace(base, ext_search="SubGRB")
    assert raven.preference_key(base, ()) > raven.preference_key(sub, ())
    assert raven.preference_key(sub, ()) > raven.preference_key(base, ("NOT_GRB",))
    better = dataclasses.replace(base, spatiotemporal_coinc_far=base.spatiotemporal_coinc_far / 2)
    assert raven.preference_key(better, ()) > raven.preference_key(base, ())


# --- sky maps ------------------------------------------------------------------------

def total_probability(table):
    import numpy as np
    order = (np.floor(np.log2(table["UNIQ"]) / 2)).astype(int) - 1
    return float(np.sum(table["PROBDENSITY"] * 4 * np.pi / (12 * 4.0 ** order)))


@pytest.mark.parametrize("pipeline,error", [("Fermi", 5.6), ("Swift", 0.05), ("IceCube", 0.92),
                                            ("INTEGRAL", 20.0)])
def test_external_skymap_normalised_and_centred(pipeline, error):
    table = ext_skymaps.make_external_skymap(140.0, -39.0, error, pipeline, max_order=7)
    assert total_probability(table) == pytest.approx(1.0, rel=1e-9)
    import numpy as np
    brightest = int(table["UNIQ"][np.argmax(table["PROBDENSITY"])])
    order = int(math.floor(math.log2(brightest) / 2)) - 1
    import healpy as hp
    ra, dec = hp.pix2ang(2 ** order, brightest - 4 * 4 ** order, nest=True, lonlat=True)
    cell = math.degrees(hp.max_pixrad(2 ** order))
    assert abs(dec - -39.0) <= cell + 1e-6


def test_fermi_core_and_tail():
    """90 % of a GBM map within the core's few sigma, a tail beyond (systematics)."""
    table = ext_skymaps.make_external_skymap(0.0, 0.0, 1.0, "Fermi", max_order=7)
    core = math.hypot(1.0, 3.7)
    within_3_core = ext_skymaps.probability_within(table, 0.0, 0.0, 3 * core)
    assert 0.88 < within_3_core < 0.97
    assert ext_skymaps.probability_within(table, 0.0, 0.0, 40.0) > 0.99


def test_gaussian_containment():
    """Fisher/Gaussian: P(< r) = 1 - exp(-r^2 / 2 sigma^2); 2 sigma holds 86.5 %."""
    table = ext_skymaps.make_external_skymap(30.0, 60.0, 4.0, "Swift", max_order=8)
    assert ext_skymaps.probability_within(table, 30.0, 60.0, 8.0) == pytest.approx(0.865, abs=0.02)


def test_overlap_integral():
    import numpy as np
    from astropy.table import Table

    # order 1: 48 cells, UNIQ = 4 * 4**1 + ipix
    uniform = Table({"UNIQ": 16 + np.arange(48, dtype=np.int64),
                     "PROBDENSITY": np.full(48, 1 / (4 * np.pi))})
    narrow = ext_skymaps.make_external_skymap(10.0, 20.0, 2.0, "Swift", max_order=8)
    assert ext_skymaps.overlap_integral(uniform, narrow) == pytest.approx(1.0, rel=1e-9)
    # a Gaussian of width s with itself: 4 pi * integral(rho^2) = 1 / s^2 (s in rad)
    same = ext_skymaps.overlap_integral(narrow, narrow)
    assert same == pytest.approx(1 / math.radians(2.0) ** 2, rel=0.1)
    far_away = ext_skymaps.make_external_skymap(190.0, -20.0, 2.0, "Swift", max_order=8)
    assert ext_skymaps.overlap_integral(narrow, far_away) < 1e-6
    assert ext_skymaps.overlap_integral(narrow, far_away) == \
        pytest.approx(ext_skymaps.overlap_integral(far_away, narrow))


def test_skymap_fits_round_trip():
    table = ext_skymaps.make_external_skymap(10.0, 20.0, 3.0, "Fermi", max_order=6)
    content = ext_skymaps.write_skymap_bytes(table, {"objid": "E1", "gps_time": 1e9})
    assert content[:6] == b"SIMPLE"
    back = ext_skymaps.read_skymap_bytes(content)
    assert total_probability(back) == pytest.approx(1.0, rel=1e-6)
    assert ext_skymaps.overlap_integral(back, table) == \
        pytest.approx(ext_skymaps.overlap_integral(table, table), rel=1e-6)


@pytest.mark.parametrize("message", [
    {"uid": "S1", "alert_type": "log", "data": {}},
    {"uid": "S1", "alert_type": "label_added", "data": {"name": "ADVREQ"}},
    {"uid": "S1", "alert_type": "event_added", "data": {}},
    {"alert_type": "new", "data": {}},
])
def test_superevent_alerts_that_do_not_search(message):
    """Only creation, updates and sky-map labels search; nothing else touches GraceDB."""
    class NoClient:
        def __getattr__(self, name):
            raise AssertionError(f"GraceDB called: {name}")

    assert raven_handler.handle_superevent_message(message, client=NoClient(), settings=SETTINGS) == []
