"""Source classification of CBC candidates: ``p_astro`` and ``em_bright``, offline.

p_astro
-------
When the search pipeline uploaded its own ``p_astro.json`` it is used as is (checked and
normalized).  Otherwise :func:`p_astro` computes one with the two-component Poisson
mixture of Kapadia et al. (2020, CQG 37 045007), the method GWCelery used for
pipelines without their own:

* astrophysical Bayes factor ``K = f(snr) / b(far)`` with the signal SNR density
  ``f(snr) = 3 snr_th**3 / snr**4`` (signals uniform in volume, snr > snr_th) and the
  background density ``b(far) = far / far_th`` relative to the threshold;
* expected counts over a reference observing time: terrestrial
  ``lambda_0 = far_th * livetime`` and astrophysical ``lambda_c`` per category
  (:data:`FOREGROUND_COUNTS`, O4-like numbers of signals above threshold per year);
* the template's masses select one category by hard mass cuts (both <= ``ns_max``: BNS;
  one: NSBH; none: BBH), so ``p_c = lambda_c K / (lambda_0 + lambda_c K)`` and
  ``p_terrestrial = 1 - p_c``.

It rises with SNR and falls with FAR, as it should; it is a documented approximation,
not a calibrated pipeline p_astro.

em_bright
---------
``ligo-em-bright`` (the LVK method: classifiers trained on injections) downloads its
model files at import time and fails offline, so it cannot run here.  :func:`em_bright`
uses only the template's masses and aligned spins, with a crude, documented template
uncertainty (chirp mass to 1 %, symmetric mass ratio to 0.02, fixed-seed Monte Carlo):

* ``HasNS``: fraction of samples whose lighter mass is at most ``ns_max_mass_msun``;
* ``HasRemnant``: fraction whose baryonic mass left outside the remnant black hole is
  positive by the fit of Foucart, Hinderer & Nissanke (2018, PRD 98 081501), with a
  12 km neutron-star radius; a binary of two neutron stars always counts as having a
  remnant;
* ``HasMassGap``: fraction with a component between 3 and 5 Msun.

Everything is imported inside the functions (numpy only); no files are needed.
"""
from __future__ import annotations

import io
import json
import math
from typing import Any, Mapping

#: Output keys of p_astro.
P_ASTRO_KEYS = ("BNS", "NSBH", "BBH", "Terrestrial")
#: SNR threshold of the foreground SNR density (dimensionless).
SNR_THRESHOLD = 8.5
#: FAR threshold of the background density (Hz): one per 30 days.
FAR_THRESHOLD_HZ = 1.0 / (30 * 86400)
#: Reference observing time (s) the expected counts refer to: one year.
LIVETIME_S = 365.25 * 86400
#: Expected astrophysical signals above threshold in LIVETIME_S (O4-like, rounded).
FOREGROUND_COUNTS = {"BNS": 5.0, "NSBH": 3.0, "BBH": 80.0}
#: Largest neutron-star mass (Msun) for the mass cuts of p_astro and em_bright.
NS_MAX_MASS_MSUN = 3.0
#: Mass gap (Msun) used by HasMassGap.
MASS_GAP_MSUN = (3.0, 5.0)
#: Neutron-star radius (km) in the remnant-mass fit.
NS_RADIUS_KM = 12.0


def mass_category(mass1: float, mass2: float, ns_max_mass_msun: float = NS_MAX_MASS_MSUN) -> str:
    """Source category from component masses by hard cuts.

    Parameters
    ----------
    mass1, mass2 : float
        Component masses (Msun), any order.
    ns_max_mass_msun : float
        Heaviest mass counted as a neutron star (Msun).

    Returns
    -------
    str
        ``"BNS"``, ``"NSBH"`` or ``"BBH"``.
    """
    neutron_stars = sum(m <= ns_max_mass_msun for m in (mass1, mass2))
    return {2: "BNS", 1: "NSBH", 0: "BBH"}[neutron_stars]


def _normalized(values: Mapping[str, Any]) -> dict[str, float]:
    """The four p_astro keys as floats in [0, 1] summing to 1."""
    missing = [key for key in P_ASTRO_KEYS if key not in values]
    if missing:
        raise ValueError(f"p_astro lacks {missing}")
    numbers = {key: float(values[key]) for key in P_ASTRO_KEYS}
    if any(not math.isfinite(v) or v < 0 for v in numbers.values()):
        raise ValueError(f"p_astro values must be finite and >= 0: {numbers}")
    total = sum(numbers.values())
    if total <= 0:
        raise ValueError("p_astro values sum to zero")
    return {key: value / total for key, value in numbers.items()}


def _event_numbers(coinc_or_event: Any) -> dict[str, float]:
    """FAR (Hz), SNR and template masses/spins from a coinc.xml or an event dict.

    Accepts coinc.xml bytes, a GraceDB event dict (``far`` and ``extra_attributes`` with
    ``CoincInspiral`` and ``SingleInspiral``), or a flat dict with ``far``, ``snr``,
    ``mass1``, ``mass2`` (and optional ``spin1z``, ``spin2z``).
    """
    if isinstance(coinc_or_event, (bytes, bytearray)):
        from gw_ops.mock.events import coinc_summary
        summary = coinc_summary(bytes(coinc_or_event))
        return {"far": summary["far_hz"], "snr": summary["snr"], "mass1": summary["mass1"],
                "mass2": summary["mass2"], "spin1z": summary["spin1z"],
                "spin2z": summary["spin2z"]}
    event = dict(coinc_or_event)
    extra = event.get("extra_attributes") or {}
    if extra:
        single = (extra.get("SingleInspiral") or [{}])[0]
        return {"far": float(event["far"]), "snr": float(extra["CoincInspiral"]["snr"]),
                "mass1": float(single["mass1"]), "mass2": float(single["mass2"]),
                "spin1z": float(single.get("spin1z") or 0.0),
                "spin2z": float(single.get("spin2z") or 0.0)}
    return {"far": float(event["far"]), "snr": float(event["snr"]),
            "mass1": float(event["mass1"]), "mass2": float(event["mass2"]),
            "spin1z": float(event.get("spin1z") or 0.0), "spin2z": float(event.get("spin2z") or 0.0)}


def p_astro_from_far_snr(far_hz: float, snr: float, mass1: float, mass2: float, *,
                         snr_threshold: float = SNR_THRESHOLD,
                         far_threshold_hz: float = FAR_THRESHOLD_HZ,
                         livetime_s: float = LIVETIME_S,
                         foreground_counts: Mapping[str, float] | None = None,
                         ns_max_mass_msun: float = NS_MAX_MASS_MSUN) -> dict[str, float]:
    """p_astro by the two-component Poisson mixture (see module docstring).

    Parameters
    ----------
    far_hz : float
        False-alarm rate (Hz), >= 0.
    snr : float
        Network SNR (dimensionless), > 0.
    mass1, mass2 : float
        Template component masses (Msun).
    snr_threshold, far_threshold_hz, livetime_s, foreground_counts, ns_max_mass_msun
        Model constants; module defaults when omitted.

    Returns
    -------
    dict
        ``BNS``, ``NSBH``, ``BBH``, ``Terrestrial`` in [0, 1], summing to 1.
    """
    counts = dict(FOREGROUND_COUNTS if foreground_counts is None else foreground_counts)
    category = mass_category(mass1, mass2, ns_max_mass_msun)
    terrestrial_count = far_threshold_hz * livetime_s
    # SNRs below threshold would make the signal density grow without bound
    foreground_density = 3.0 * snr_threshold ** 3 / max(snr, snr_threshold) ** 4
    background_density = max(far_hz, 0.0) / far_threshold_hz
    # work with logs so tiny FARs (1e-30 Hz) neither overflow nor divide by zero
    if background_density == 0.0:
        p_category = 1.0
    else:
        log_odds = (math.log(counts[category]) + math.log(foreground_density)
                    - math.log(background_density) - math.log(terrestrial_count))
        p_category = 1.0 / (1.0 + math.exp(-log_odds)) if log_odds > -700 else 0.0
    result = {key: 0.0 for key in P_ASTRO_KEYS}
    result[category] = p_category
    result["Terrestrial"] = 1.0 - p_category
    return result


def p_astro(coinc_or_event: Any, uploaded_p_astro_json: bytes | str | Mapping | None = None,
            **model: Any) -> dict[str, float]:
    """Source classification of a CBC candidate.

    Parameters
    ----------
    coinc_or_event : bytes or dict
        The coinc.xml (bytes) or a GraceDB event dict (or a flat dict with ``far`` in Hz,
        ``snr``, ``mass1``, ``mass2`` in Msun).  Not read when a valid pipeline
        p_astro is given.
    uploaded_p_astro_json : bytes, str or dict, optional
        The pipeline's own ``p_astro.json``; used (normalized) when present and valid.
    **model
        Constants passed to :func:`p_astro_from_far_snr`.

    Returns
    -------
    dict
        ``BNS``, ``NSBH``, ``BBH``, ``Terrestrial`` probabilities, summing to 1.
    """
    if uploaded_p_astro_json is not None:
        uploaded = uploaded_p_astro_json
        if isinstance(uploaded, (bytes, bytearray, str)):
            uploaded = json.load(io.StringIO(uploaded.decode() if isinstance(uploaded, (bytes, bytearray))
                                             else uploaded))
        try:
            return _normalized(uploaded)
        except (ValueError, TypeError):
            pass  # a malformed upload must not stop the alert: compute our own below
    numbers = _event_numbers(coinc_or_event)
    return p_astro_from_far_snr(numbers["far"], numbers["snr"], numbers["mass1"],
                                numbers["mass2"], **model)


def remnant_mass_msun(bh_mass_msun: float, ns_mass_msun: float, bh_spin_z: float = 0.0,
                      ns_radius_km: float = NS_RADIUS_KM) -> float:
    """Baryonic mass left outside the black hole after an NSBH merger (Msun).

    Fit of Foucart, Hinderer & Nissanke (2018, PRD 98 081501, Eq. 4) with aligned BH spin;
    baryonic NS mass from Lattimer & Prakash (2001).

    Parameters
    ----------
    bh_mass_msun, ns_mass_msun : float
        Black-hole and neutron-star masses (Msun).
    bh_spin_z : float
        Dimensionless BH spin along the orbital angular momentum, in (-1, 1).
    ns_radius_km : float
        Neutron-star radius (km).

    Returns
    -------
    float
        Remnant baryonic mass (Msun), >= 0.
    """
    g_msun_over_c2_km = 1.4766250614  # G Msun / c^2 in km
    compactness = g_msun_over_c2_km * ns_mass_msun / ns_radius_km
    baryonic_mass = ns_mass_msun * (1 + 0.6 * compactness / (1 - 0.5 * compactness))
    mass_ratio = bh_mass_msun / ns_mass_msun
    eta = mass_ratio / (1 + mass_ratio) ** 2
    chi = min(max(bh_spin_z, -0.999), 0.999)
    z1 = 1 + (1 - chi ** 2) ** (1 / 3) * ((1 + chi) ** (1 / 3) + (1 - chi) ** (1 / 3))
    z2 = math.sqrt(3 * chi ** 2 + z1 ** 2)
    r_isco = 3 + z2 - math.copysign(1.0, chi) * math.sqrt((3 - z1) * (3 + z1 + 2 * z2))
    alpha, beta, gamma, delta = 0.406, 0.139, 0.255, 1.761
    bracket = (alpha * (1 - 2 * compactness) / eta ** (1 / 3)
               - beta * r_isco * compactness / eta + gamma)
    return baryonic_mass * max(bracket, 0.0) ** delta


def em_bright(mass1: float, mass2: float, spin1z: float = 0.0, spin2z: float = 0.0, *,
              ns_max_mass_msun: float = NS_MAX_MASS_MSUN, samples: int = 2000,
              chirp_mass_rel_sigma: float = 0.01, eta_sigma: float = 0.02,
              seed: int = 0) -> dict[str, float]:
    """HasNS, HasRemnant, HasMassGap of a CBC from its template (see module docstring).

    Parameters
    ----------
    mass1, mass2 : float
        Template component masses (Msun), any order.
    spin1z, spin2z : float
        Aligned dimensionless spins of mass1 and mass2.
    ns_max_mass_msun : float
        Heaviest neutron star (Msun).
    samples : int
        Monte Carlo samples of the template uncertainty.
    chirp_mass_rel_sigma, eta_sigma : float
        Relative chirp-mass and absolute symmetric-mass-ratio uncertainty.
    seed : int
        Seed of the Monte Carlo (results are reproducible).

    Returns
    -------
    dict
        ``HasNS``, ``HasRemnant``, ``HasMassGap`` in [0, 1].
    """
    import numpy as np

    if mass2 > mass1:
        mass1, mass2, spin1z, spin2z = mass2, mass1, spin2z, spin1z
    total = mass1 + mass2
    eta0 = mass1 * mass2 / total ** 2
    chirp0 = total * eta0 ** 0.6
    rng = np.random.default_rng(seed)
    chirp = chirp0 * (1 + chirp_mass_rel_sigma * rng.standard_normal(samples))
    eta = np.clip(eta0 + eta_sigma * rng.standard_normal(samples), 0.01, 0.25)
    total_s = chirp / eta ** 0.6
    root = np.sqrt(np.clip(1 - 4 * eta, 0, None))
    heavy = 0.5 * total_s * (1 + root)
    light = 0.5 * total_s * (1 - root)

    has_ns = light <= ns_max_mass_msun
    gap_low, gap_high = MASS_GAP_MSUN
    has_gap = ((heavy > gap_low) & (heavy <= gap_high)) | ((light > gap_low) & (light <= gap_high))
    has_remnant = np.zeros(samples, dtype=bool)
    both_ns = has_ns & (heavy <= ns_max_mass_msun)
    has_remnant[both_ns] = True
    for i in np.flatnonzero(has_ns & ~both_ns):
        has_remnant[i] = remnant_mass_msun(heavy[i], light[i], spin1z) > 0
    return {"HasNS": float(has_ns.mean()), "HasRemnant": float(has_remnant.mean()),
            "HasMassGap": float(has_gap.mean())}
