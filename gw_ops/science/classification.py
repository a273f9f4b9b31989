"""Source classification of CBC candidates: ``p_astro`` and ``em_bright``.

The module is over 400 lines because its docstrings carry the record of what each
method was compared with and how far apart the two are; the code is about half of it.

p_astro
-------
A pipeline's own ``p_astro.json`` wins: :func:`p_astro` uses it (checked and
normalized) when given.  Otherwise :func:`compute_p_astro` computes one the way
GWCelery 2.x does for pipelines that upload none, by calling the LVK library
``ligo.p_astro`` (PyPI ``p-astro`` 1.0.2, GPL-3.0) and reading the data files it ships
(``ligo/p_astro/data``; p-astro 1.0.1 had them in ``ligo/data``, read as a fallback):

1. SNR cap (``computation.choose_snr``): for each pipeline and sorted detector
   combination, ``H1L1V1-pipeline-far_snr-thresholds.json`` gives a FAR and an SNR;
   below that FAR, a louder SNR is replaced by that SNR (pycbc: 10 below 3.2e-10 Hz;
   mbta: 10 or 12; spiir and single detectors: never).  gstlal is never capped.
2. Astrophysical Bayes factor ``K = (3 SNR*^3 / snr^4) / (far / FAR*)``
   (``computation.get_f_over_b``), SNR* = 8.5, FAR* = 1 / 30 days.
3. Expected counts: BNS 2.11, NSBH 2.77, BBH 10.46 from
   ``H1L1V1-mean_counts-1126051217-61603201.json``; terrestrial ``FAR* x livetime``
   with the livetime of ``p_astro_livetime.json`` (14 394 240 s, 166.6 d): 5.553.
4. ``computation.evaluate_p_astro_from_bayesfac``: hard mass cuts on the template
   (both <= 3 Msun: BNS; both > 5: BBH; lighter <= 3 < heavier: NSBH; 3 bins) pick one
   category ``c``, so ``p_c = 3 n_c K / (n_T + 3 n_c K)`` and ``p_Terrestrial = 1 - p_c``.
   A template with a mass in (3, 5] and none <= 3 has no category: Terrestrial = 1.

Inputs from a GraceDB event dict, as GWCelery takes them: ``far``, the
``CoincInspiral`` SNR, the first ``SingleInspiral`` row's masses, ``pipeline``
(lower-cased), and the detectors in the ranking statistic: the single rows with a
``chisq``.  What GWCelery does not handle:

* **No chisq on any single row** (gw-ops' local GraceDB and mock coincs): the event's
  ``instruments`` field is used instead, else the single rows' detectors.
* **FAR 0** (no background louder; GWCelery divides by it and fails): every FAR is
  raised to at least :data:`FAR_FLOOR_HZ` (1e-100 Hz), which keeps K finite; the
  candidate comes out astrophysical, ``p_Terrestrial`` below 1e-80 up to SNR 10^4
  (a template in the mass gap stays Terrestrial = 1, as at any FAR).  A negative
  or non-finite FAR, and an SNR or mass that is not positive, raise
  :class:`ClassificationInputError`.
* **A detector combination or pipeline without an entry** in the thresholds file (for
  example any with K1; GWCelery raises KeyError): the SNR is not capped, like gstlal.
  For a loud event this lowers p_astro (pycbc snr 33, FAR 1e-10 Hz, BNS: 0.87 instead
  of 0.999); a warning is logged.
* **Not a CBC event** (group not CBC, a burst pipeline, no inspiral attributes):
  :class:`NotCBCEventError`.
* **GstLAL ranking-data path**: ``ligo.p_astro.gstlal_utils`` calls ``np.trapz``, which
  numpy 2.4 removed.  gw-ops never imports that module (only ``computation``; a test
  checks it), so the installed package is used unpatched.

``ligo.p_astro`` (and numpy, scipy through it) is imported inside the functions: the
DAG processor imports the handler modules, which import this one.  The first call
costs 0.3-0.9 s here (mostly scipy, which ligo.skymap loads anyway), a warm one 40-80 us.

em_bright
---------
``ligo.em_bright`` cannot run here: it needs ``astropy<7`` (gw-ops pins astropy 8)
and downloads its EOS draws and trained classifiers at import.  :func:`em_bright` is an
offline method on the template's masses and aligned spins with a crude, documented
template uncertainty (chirp mass to 1 %, symmetric mass ratio to 0.02, fixed-seed Monte
Carlo of ``samples`` draws):

* ``HasNS``: fraction of samples whose lighter mass is at most ``ns_max_mass_msun`` (3);
* ``HasRemnant``: fraction whose baryonic mass left outside the black hole is positive
  by the fit of Foucart, Hinderer & Nissanke (2018, PRD 98 081501) with a 12 km
  neutron-star radius (:func:`remnant_mass_msun`); two neutron stars always count;
* ``HasMassGap``: fraction with a component in (3, 5] Msun.

Compared with ligo.em_bright 1.2.2's model-free code (its data module replaced by an
empty stand-in, in a separate environment), over m1 1.2-20, m2 1.0-3.0, chi1 -0.5-0.9,
chi2 0, m1 >= m2 (7664 points):

* remnant mass vs ``computeDiskMass`` at the same 12 km radius and 3.0 Msun maximum
  (7224 NSBH points): max |difference| 0.0014 Msun, mean 3e-5 Msun (1.6 % max relative);
  the same 961 points have a remnant.  The only difference is the baryonic mass:
  Lattimer & Prakash ``m (1 + 0.6 C / (1 - 0.5 C))`` here, ``m (1 + 0.619 C + 0.1359 C^2)``
  there (1.5583 vs 1.5549 Msun at 1.4 Msun).  144 library values, in
  ``tests/data/classification/em_bright_remnant_reference.json``, are checked in CI;
* the library's label definitions (what its classifiers are trained to predict: HasNS
  m2 < max mass, HasRemnant disk mass > 0, HasMassGap a mass in (3, 5)) at the template
  point, gw-ops unsmeared: identical everywhere except at m2 = 3.0 exactly, where the
  boundaries differ (<= here, < there) and the masses rebuilt from (Mc, eta) land on
  either side by rounding (216 HasNS, 112 HasMassGap points).  With the default
  smearing, mean differences 0.06 (HasNS), 0.02 (HasRemnant), 0.09 (HasMassGap);
* with a real equation of state in the library the remnant mass moves by up to
  0.18 Msun (SLY) or 0.05 Msun (MPA1): the fixed radius, not the code, dominates.

The library itself marginalizes over 23 equations of state and is trained on recovered
parameters; that part cannot be evaluated offline and is not reproduced here.
"""
from __future__ import annotations

import functools
import io
import json
import logging
import math
from typing import Any, Iterable, Mapping

from gw_ops.errors import PermanentError

log = logging.getLogger(__name__)

#: Output keys of p_astro, in the library's order.
P_ASTRO_KEYS = ("BNS", "NSBH", "BBH", "Terrestrial")
#: Threshold SNR of the foreground SNR density (dimensionless, GWCelery's value).
SNR_THRESHOLD = 8.5
#: Threshold FAR of the background density (Hz): one per 30 days (GWCelery's value).
FAR_THRESHOLD_HZ = 1.0 / (30 * 86400)
#: Smallest FAR (Hz) used in the Bayes factor; FAR 0 is raised to it (see module doc).
FAR_FLOOR_HZ = 1e-100
#: Packages holding p-astro's data files: 1.0.2 layout first, then 1.0.1.
P_ASTRO_DATA_PACKAGES = ("ligo.p_astro.data", "ligo.data")
#: Data files shipped with p-astro.
MEAN_COUNTS_FILE = "H1L1V1-mean_counts-1126051217-61603201.json"
THRESHOLDS_FILE = "H1L1V1-pipeline-far_snr-thresholds.json"
LIVETIME_FILE = "p_astro_livetime.json"
#: GraceDB pipelines of unmodelled (burst) searches: no p_astro from this module.
BURST_PIPELINES = frozenset({"cwb", "olib", "mly"})
#: Largest neutron-star mass (Msun) for em_bright.
NS_MAX_MASS_MSUN = 3.0
#: Mass gap (Msun) used by HasMassGap.
MASS_GAP_MSUN = (3.0, 5.0)
#: Neutron-star radius (km) in the remnant-mass fit.
NS_RADIUS_KM = 12.0


class ClassificationInputError(PermanentError, ValueError):
    """Event values p_astro cannot use (missing, negative or non-finite)."""


class NotCBCEventError(ClassificationInputError):
    """p_astro was asked for an event that is not a compact binary coalescence."""


@functools.cache
def _shipped_data(name: str) -> dict:
    """One of p-astro's JSON data files, read once."""
    from importlib import resources
    for package in P_ASTRO_DATA_PACKAGES:
        try:
            return json.loads(resources.files(package).joinpath(name).read_text())
        except (ModuleNotFoundError, FileNotFoundError):
            continue
    raise FileNotFoundError(f"p-astro data file {name} not found in {P_ASTRO_DATA_PACKAGES}")


def expected_counts() -> dict[str, float]:
    """Expected counts above threshold: ``counts_BNS``, ``counts_NSBH``, ``counts_BBH``
    (shipped file) and ``counts_Terrestrial`` = FAR* x livetime (about 5.553)."""
    counts = {key: float(value) for key, value in _shipped_data(MEAN_COUNTS_FILE).items()}
    livetime_s = float(_shipped_data(LIVETIME_FILE)["p_astro_livetime"])
    counts["counts_Terrestrial"] = FAR_THRESHOLD_HZ * livetime_s
    return counts


def capped_snr(snr: float, far_hz: float, pipeline: str, instruments: Iterable[str]) -> float:
    """SNR after the library's loud-event cap; uncapped where the file has no entry.

    Parameters
    ----------
    snr : float
        Network SNR.
    far_hz : float
        False-alarm rate (Hz).
    pipeline : str
        Search pipeline, lower case.
    instruments : iterable of str
        Detectors in the ranking statistic.

    Returns
    -------
    float
        The SNR to use in the Bayes factor.
    """
    thresholds = _shipped_data(THRESHOLDS_FILE)
    combination = ",".join(sorted(instruments))
    if pipeline != "gstlal" and combination not in thresholds.get(pipeline, {}):
        log.warning("p_astro: no SNR cap for pipeline %r with detectors %r; SNR used as is",
                    pipeline, combination)
        return float(snr)
    from ligo.p_astro import computation
    return float(computation.choose_snr(far_hz, snr, pipeline, set(instruments), thresholds))


def compute_p_astro(snr: float, far_hz: float, mass1: float, mass2: float, pipeline: str,
                    instruments: Iterable[str]) -> dict[str, float]:
    """p_astro of a CBC candidate by ``ligo.p_astro``, as GWCelery computes it.

    Parameters
    ----------
    snr : float
        Network SNR (dimensionless), > 0.
    far_hz : float
        False-alarm rate (Hz), >= 0; raised to at least :data:`FAR_FLOOR_HZ`.
    mass1, mass2 : float
        Template component masses (Msun, detector frame), any order.
    pipeline : str
        Search pipeline (``gstlal``, ``pycbc``, ``mbta``, ``spiir``; any case).
    instruments : iterable of str
        Detectors in the ranking statistic, e.g. ``{"H1", "L1"}``.

    Returns
    -------
    dict
        ``BNS``, ``NSBH``, ``BBH``, ``Terrestrial`` in [0, 1], summing to 1.

    Raises
    ------
    NotCBCEventError
        For a burst pipeline.
    ClassificationInputError
        For a negative or non-finite FAR, or an SNR or mass that is not positive.
    """
    pipeline = str(pipeline).lower()
    if pipeline in BURST_PIPELINES:
        raise NotCBCEventError(f"p_astro is for CBC candidates; {pipeline!r} is a burst search")
    far_hz, snr, mass1, mass2 = (float(x) for x in (far_hz, snr, mass1, mass2))
    if not (math.isfinite(far_hz) and far_hz >= 0):
        raise ClassificationInputError(f"FAR must be finite and >= 0 Hz, got {far_hz!r}")
    for name, value in (("SNR", snr), ("mass1", mass1), ("mass2", mass2)):
        if not (math.isfinite(value) and value > 0):
            raise ClassificationInputError(f"{name} must be finite and > 0, got {value!r}")
    far_hz = max(far_hz, FAR_FLOOR_HZ)
    from ligo.p_astro import computation
    snr_used = capped_snr(snr, far_hz, pipeline, instruments)
    bayes_factor = computation.get_f_over_b(far_hz, snr_used, FAR_THRESHOLD_HZ, SNR_THRESHOLD)
    values = computation.evaluate_p_astro_from_bayesfac(bayes_factor, expected_counts(),
                                                        mass1, mass2)
    return {key: float(values[key]) for key in P_ASTRO_KEYS}


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


def _instrument_set(value: Any) -> set[str]:
    """Detectors from a comma-separated string or an iterable of names."""
    names = value.split(",") if isinstance(value, str) else (value or ())
    return {str(name).strip() for name in names if str(name).strip()}


def ranking_instruments(event: Mapping[str, Any]) -> set[str]:
    """Detectors in the ranking statistic of a GraceDB CBC event dict.

    The single-detector rows with a ``chisq`` (GWCelery's rule); when no row has one,
    the event's ``instruments``, else all single rows' detectors.
    """
    singles = (event.get("extra_attributes") or {}).get("SingleInspiral") or []
    with_chisq = {row["ifo"] for row in singles if row.get("ifo") and row.get("chisq") is not None}
    return (with_chisq or _instrument_set(event.get("instruments"))
            or {row["ifo"] for row in singles if row.get("ifo")})


def _coinc_numbers(coinc_xml: bytes) -> dict[str, Any]:
    """FAR, SNR, masses and detectors of a LIGO-LW coinc.xml."""
    from igwn_ligolw import lsctables
    from igwn_ligolw import utils as ligolw_utils
    doc = ligolw_utils.load_fileobj(io.BytesIO(coinc_xml))
    coincs = lsctables.CoincInspiralTable.get_table(doc)
    singles = lsctables.SnglInspiralTable.get_table(doc)
    if len(coincs) != 1 or not singles:
        raise NotCBCEventError("coinc.xml needs one coinc_inspiral row and sngl_inspiral rows")
    return {"far": coincs[0].combined_far, "snr": coincs[0].snr, "mass1": singles[0].mass1,
            "mass2": singles[0].mass2, "instruments": {row.ifo for row in singles}}


def _event_numbers(coinc_or_event: Any) -> dict[str, Any]:
    """``far``, ``snr``, ``mass1``, ``mass2``, ``pipeline``, ``instruments`` of the input."""
    if isinstance(coinc_or_event, (bytes, bytearray)):
        return _coinc_numbers(bytes(coinc_or_event))
    event = dict(coinc_or_event)
    group = str(event.get("group") or "CBC")
    if group.lower() != "cbc" or str(event.get("pipeline") or "").lower() in BURST_PIPELINES:
        raise NotCBCEventError(f"p_astro is for CBC events; got group {group!r}, "
                               f"pipeline {event.get('pipeline')!r}")
    extra = event.get("extra_attributes") or {}
    if not extra:  # a flat dict (tests, benchmarks)
        return {key: event.get(key) for key in ("far", "snr", "mass1", "mass2", "pipeline")} | {
            "instruments": _instrument_set(event.get("instruments"))}
    coinc, singles = extra.get("CoincInspiral"), extra.get("SingleInspiral")
    if not coinc or not singles:
        raise NotCBCEventError("p_astro needs a CBC event's CoincInspiral and "
                               "SingleInspiral attributes; this event has none")
    return {"far": event.get("far"), "snr": coinc.get("snr"), "mass1": singles[0].get("mass1"),
            "mass2": singles[0].get("mass2"), "pipeline": event.get("pipeline"),
            "instruments": ranking_instruments(event)}


def p_astro(coinc_or_event: Any, uploaded_p_astro_json: bytes | str | Mapping | None = None,
            *, pipeline: str | None = None) -> dict[str, float]:
    """Source classification of a CBC candidate (see module docstring).

    Parameters
    ----------
    coinc_or_event : bytes or dict
        A GraceDB event dict (``far`` in Hz, ``pipeline``, ``instruments``,
        ``extra_attributes`` with ``CoincInspiral`` and ``SingleInspiral``), a flat dict
        (``far``, ``snr``, ``mass1``, ``mass2`` in Msun, ``pipeline``, ``instruments``),
        or coinc.xml bytes (then pass ``pipeline``).  Not read when a valid pipeline
        p_astro is given.
    uploaded_p_astro_json : bytes, str or dict, optional
        The pipeline's own ``p_astro.json``; used (normalized) when present and valid.
    pipeline : str, optional
        Search pipeline; overrides the event's (required for coinc.xml bytes).

    Returns
    -------
    dict
        ``BNS``, ``NSBH``, ``BBH``, ``Terrestrial`` probabilities, summing to 1.

    Raises
    ------
    NotCBCEventError, ClassificationInputError
        For input p_astro cannot classify (a permanent error: retrying cannot help).
    """
    if uploaded_p_astro_json is not None:
        try:
            uploaded = uploaded_p_astro_json
            if isinstance(uploaded, (bytes, bytearray, str)):
                uploaded = json.loads(uploaded)
            return _normalized(uploaded)
        except (ValueError, TypeError) as exc:
            # a malformed upload must not stop the alert: compute our own below
            log.warning("pipeline p_astro.json ignored (%s); computing p_astro", exc)
    numbers = _event_numbers(coinc_or_event)
    numbers["pipeline"] = pipeline or numbers.get("pipeline")
    missing = [key for key in ("far", "snr", "mass1", "mass2", "pipeline") if numbers[key] is None]
    if missing:
        raise ClassificationInputError(f"p_astro needs {missing} from the event")
    return compute_p_astro(numbers["snr"], numbers["far"], numbers["mass1"], numbers["mass2"],
                           numbers["pipeline"], numbers["instruments"])


def remnant_mass_msun(bh_mass_msun: float, ns_mass_msun: float, bh_spin_z: float = 0.0,
                      ns_radius_km: float = NS_RADIUS_KM) -> float:
    """Baryonic mass left outside the black hole after an NSBH merger (Msun).

    Fit of Foucart, Hinderer & Nissanke (2018, PRD 98 081501, Eq. 4) with aligned BH spin;
    baryonic NS mass from Lattimer & Prakash (2001).  Agrees with ligo.em_bright's
    ``computeDiskMass`` at the same radius to 0.0014 Msun (module docstring).

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
