"""p_astro and em_bright: ranges, sums, monotonic behaviour, uploaded p_astro preference."""
from __future__ import annotations

import json

import pytest

from gw_ops.mock.events import list_mock_events, load_mock_event
from gw_ops.science.classification import (
    P_ASTRO_KEYS,
    em_bright,
    mass_category,
    p_astro,
    p_astro_from_far_snr,
    remnant_mass_msun,
)


def _check_p_astro(result):
    assert set(result) == set(P_ASTRO_KEYS)
    assert all(0.0 <= v <= 1.0 for v in result.values())
    assert sum(result.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("masses, category", [((1.4, 1.3), "BNS"), ((8.0, 1.4), "NSBH"),
                                               ((1.4, 8.0), "NSBH"), ((30.0, 20.0), "BBH")])
def test_mass_category(masses, category):
    assert mass_category(*masses) == category
    result = p_astro({"far": 1e-12, "snr": 12.0, "mass1": masses[0], "mass2": masses[1]})
    _check_p_astro(result)
    assert max(result, key=result.get) == category


def test_p_astro_falls_with_far_and_rises_with_snr():
    fars = [1e-30, 1e-12, 1e-9, 1e-7, 1e-6, 1e-5, 1e-3, 1.0]
    terrestrial = [p_astro_from_far_snr(far, 10.0, 1.4, 1.3)["Terrestrial"] for far in fars]
    assert terrestrial == sorted(terrestrial)
    assert terrestrial[0] < 1e-6 and terrestrial[-1] > 0.999
    snrs = [8.0, 9.0, 12.0, 20.0, 50.0]
    astro = [p_astro_from_far_snr(1e-7, snr, 1.4, 1.3)["BNS"] for snr in snrs]
    assert astro == sorted(astro, reverse=True)  # a loud SNR at a fixed FAR is less surprising
    for far in fars:
        _check_p_astro(p_astro_from_far_snr(far, 10.0, 1.4, 1.3))
    _check_p_astro(p_astro_from_far_snr(0.0, 10.0, 1.4, 1.3))


def test_p_astro_reads_coinc_xml_and_graceddb_event_dict():
    event = load_mock_event(1, now_gps=1_400_000_000)
    from_coinc = p_astro(event.coinc_xml)
    _check_p_astro(from_coinc)
    assert from_coinc["Terrestrial"] < 0.01
    assert max(from_coinc, key=from_coinc.get) == list_mock_events()[1].injection.population
    gracedb_event = {"far": 1e-3, "extra_attributes": {
        "CoincInspiral": {"snr": 9.0},
        "SingleInspiral": [{"mass1": 1.5, "mass2": 1.2, "spin1z": 0.0, "spin2z": 0.0}]}}
    assert p_astro(gracedb_event)["Terrestrial"] > 0.9


def test_uploaded_p_astro_wins_and_is_normalized():
    uploaded = {"BNS": 2.0, "NSBH": 1.0, "BBH": 0.0, "Terrestrial": 1.0}
    for form in (uploaded, json.dumps(uploaded), json.dumps(uploaded).encode()):
        result = p_astro({"far": 1.0, "snr": 8.0, "mass1": 30, "mass2": 30}, form)
        assert result == pytest.approx({"BNS": 0.5, "NSBH": 0.25, "BBH": 0.0, "Terrestrial": 0.25})
    # a malformed upload falls back to the computed value
    fallback = p_astro({"far": 1e-20, "snr": 20.0, "mass1": 1.4, "mass2": 1.4}, b'{"BNS": 1}')
    assert fallback["BNS"] > 0.99


def test_em_bright_ranges_and_limits():
    cases = {
        (1.4, 1.3, 0.0): dict(HasNS=1.0, HasRemnant=1.0, HasMassGap=0.0),
        (30.0, 25.0, 0.0): dict(HasNS=0.0, HasRemnant=0.0, HasMassGap=0.0),
        (7.0, 1.4, 0.0): dict(HasNS=1.0, HasRemnant=0.0),     # swallowed whole
        (7.0, 1.4, 0.9): dict(HasNS=1.0, HasRemnant=1.0),     # fast spin leaves a disk
    }
    for (m1, m2, s1), expected in cases.items():
        result = em_bright(m1, m2, s1, 0.0)
        assert set(result) == {"HasNS", "HasRemnant", "HasMassGap"}
        assert all(0.0 <= v <= 1.0 for v in result.values())
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, abs=0.02), (m1, m2, s1, key)
    assert em_bright(4.0, 1.4)["HasMassGap"] > 0.5
    assert em_bright(1.4, 7.0, 0.0, 0.9) == em_bright(7.0, 1.4, 0.9, 0.0)  # order-free
    assert em_bright(5.0, 1.4) == em_bright(5.0, 1.4)  # reproducible


def test_remnant_mass_grows_with_spin_and_shrinks_with_bh_mass():
    by_spin = [remnant_mass_msun(6.0, 1.4, chi) for chi in (-0.5, 0.0, 0.5, 0.9)]
    assert by_spin == sorted(by_spin) and by_spin[-1] > 0
    by_mass = [remnant_mass_msun(m, 1.4, 0.7) for m in (4.0, 8.0, 16.0)]
    assert by_mass == sorted(by_mass, reverse=True)
    assert all(m >= 0 for m in by_spin + by_mass)
