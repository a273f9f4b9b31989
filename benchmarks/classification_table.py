"""Old and new source classification of the 10 bundled mock events, side by side.

For each mock event, taken as the openmp lane sees it (the local GraceDB's event dict:
pipeline gstlal, FAR, CoincInspiral SNR, first SingleInspiral's masses and spins):

* **old p_astro**: gw-ops' previous two-component Poisson mixture (its own constants:
  BNS 5, NSBH 3, BBH 80 per year, terrestrial FAR* x 1 yr, SNR clamped at 8.5, any mass
  above 3 Msun a black hole).  Kept here only, as :func:`previous_p_astro`, for comparison.
* **new p_astro**: :func:`gw_ops.science.classification.p_astro` (ligo.p_astro, as
  GWCelery 2.x computes it).
* **em_bright**: :func:`gw_ops.science.classification.em_bright` (the offline Monte Carlo;
  its method did not change, so old = new).  When ``ligo.em_bright`` can be imported (the
  research environment, not gw-ops'), the remnant mass of the template is also computed
  by its ``computeDiskMass`` at the same 12 km radius, beside gw-ops'.

The mock events are all loud (FAR 1e-30 to 3e-12 Hz), so both methods call them
astrophysical; a second table puts the same templates at SNR 10, FAR 1e-8 Hz (a marginal
candidate), where the two methods part.

Usage: ``.venv/bin/python benchmarks/classification_table.py [--markdown]``
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import types

# --- previous method, for comparison (gw_ops/science/classification.py before issue 16) --
PREVIOUS_SNR_THRESHOLD = 8.5
PREVIOUS_FAR_THRESHOLD_HZ = 1.0 / (30 * 86400)
PREVIOUS_LIVETIME_S = 365.25 * 86400
PREVIOUS_FOREGROUND_COUNTS = {"BNS": 5.0, "NSBH": 3.0, "BBH": 80.0}
PREVIOUS_NS_MAX_MASS_MSUN = 3.0


def previous_p_astro(far_hz: float, snr: float, mass1: float, mass2: float) -> dict[str, float]:
    """Previous method, for comparison: gw-ops' two-component Poisson mixture.

    ``K = (3 snr_th^3 / max(snr, snr_th)^4) / (far / far_th)``; one category by hard mass
    cuts (both <= 3 Msun BNS, one NSBH, none BBH); ``p_c = n_c K / (n_T + n_c K)`` with
    the counts above and ``n_T = far_th x 1 yr``.
    """
    neutron_stars = sum(m <= PREVIOUS_NS_MAX_MASS_MSUN for m in (mass1, mass2))
    category = {2: "BNS", 1: "NSBH", 0: "BBH"}[neutron_stars]
    terrestrial_count = PREVIOUS_FAR_THRESHOLD_HZ * PREVIOUS_LIVETIME_S
    foreground = 3.0 * PREVIOUS_SNR_THRESHOLD ** 3 / max(snr, PREVIOUS_SNR_THRESHOLD) ** 4
    background = max(far_hz, 0.0) / PREVIOUS_FAR_THRESHOLD_HZ
    if background == 0.0:
        p_category = 1.0
    else:
        log_odds = (math.log(PREVIOUS_FOREGROUND_COUNTS[category]) + math.log(foreground)
                    - math.log(background) - math.log(terrestrial_count))
        p_category = 1.0 / (1.0 + math.exp(-log_odds)) if log_odds > -700 else 0.0
    result = dict.fromkeys(("BNS", "NSBH", "BBH", "Terrestrial"), 0.0)
    result[category] = p_category
    result["Terrestrial"] = 1.0 - p_category
    return result
# --- end of the previous method ----------------------------------------------------------


def library_remnant_mass():
    """ligo.em_bright's computeDiskMass at R = 12 km, max mass 3.0, or None if absent.

    Its data module downloads files at import; an empty stand-in replaces it (only the
    model-free remnant-mass code is used).
    """
    try:
        import numpy as np
        from scipy.interpolate import interp1d
        stub = types.ModuleType("ligo.em_bright.data")
        stub.PACKAGE_FILENAMES, stub.EOS_BAYES_FACTORS, stub.EOS_MAX_MASS = {}, {}, {}
        sys.modules.setdefault("ligo.em_bright.data", stub)
        from ligo.em_bright import computeDiskMass
    except ImportError:
        return None
    radius = interp1d([0.1, 10.0], [12e3, 12e3])

    def remnant(mass1, mass2, spin1z):
        heavy, light = max(mass1, mass2), min(mass1, mass2)
        value = computeDiskMass.computeDiskMass(np.array([heavy]), np.array([light]),
                                                np.array([spin1z]), np.zeros(1),
                                                eosname=radius, max_mass=3.0)
        return float(np.ravel(value)[0])
    return remnant


def mock_events():
    """(name, population, event dict as the local GraceDB serves it) of each mock event."""
    from gw_ops.local_gracedb.parsing import parse_coinc
    from gw_ops.mock.events import list_mock_events, load_mock_event

    for summary in list_mock_events():
        mock = load_mock_event(summary.index)
        data = parse_coinc(mock.coinc_xml)
        yield summary.name, summary.injection.population, {
            "group": "CBC", "pipeline": mock.pipeline, "search": mock.search, "far": data.far,
            "instruments": data.instruments, "extra_attributes": data.extra_attributes}


def _p(values: dict[str, float]) -> str:
    top = max(("BNS", "NSBH", "BBH"), key=values.get)
    return f"{top} {values[top]:.4f}, Terr {values['Terrestrial']:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args()
    from gw_ops.science.classification import em_bright, p_astro, remnant_mass_msun

    library_remnant = library_remnant_mass()
    rows, marginal = [], []
    started = time.perf_counter()
    for name, population, event in mock_events():
        single = event["extra_attributes"]["SingleInspiral"][0]
        snr = event["extra_attributes"]["CoincInspiral"]["snr"]
        mass1, mass2 = single["mass1"], single["mass2"]
        spin1z, spin2z = single.get("spin1z", 0.0), single.get("spin2z", 0.0)
        properties = em_bright(mass1, mass2, spin1z, spin2z)
        heavy, light = max(mass1, mass2), min(mass1, mass2)
        ours = remnant_mass_msun(heavy, light, spin1z if mass1 >= mass2 else spin2z)
        theirs = (library_remnant(mass1, mass2, spin1z if mass1 >= mass2 else spin2z)
                  if library_remnant and heavy > 3.0 else None)
        remnant = ("BNS" if heavy <= 3.0 else f"{ours:.4f}" + (
            f" / {theirs:.4f}" if theirs is not None else " / n/a"))
        rows.append([name, population, f"{mass1:.2f}+{mass2:.2f}", f"{snr:.1f}",
                     f"{event['far']:.2g}", _p(previous_p_astro(event["far"], snr, mass1, mass2)),
                     _p(p_astro(event)),
                     " ".join(f"{properties[k]:.3f}" for k in ("HasNS", "HasRemnant", "HasMassGap")),
                     remnant])
        faint = dict(event, far=1e-8, extra_attributes=dict(
            event["extra_attributes"], CoincInspiral={"snr": 10.0}))
        marginal.append([name, population, f"{mass1:.2f}+{mass2:.2f}",
                         _p(previous_p_astro(1e-8, 10.0, mass1, mass2)), _p(p_astro(faint))])
    elapsed = time.perf_counter() - started

    header = ["event", "injected", "m1+m2 (Msun)", "SNR", "FAR (Hz)", "old p_astro",
              "new p_astro", "em_bright HasNS HasRemnant HasMassGap",
              "remnant mass gw-ops / ligo.em_bright (Msun)"]
    header2 = ["event", "injected", "m1+m2 (Msun)", "old p_astro (SNR 10, FAR 1e-8 Hz)",
               "new p_astro (SNR 10, FAR 1e-8 Hz)"]
    for title, head, body in (("Mock events as uploaded", header, rows),
                              ("Same templates as a marginal candidate", header2, marginal)):
        print(f"\n{title}\n")
        if args.markdown:
            print("| " + " | ".join(head) + " |")
            print("|" + "---|" * len(head))
            for row in body:
                print("| " + " | ".join(row) + " |")
        else:
            widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
            for row in [head] + body:
                print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print(f"\n(old p_astro: previous Poisson mixture, kept in this script only; new p_astro: "
          f"ligo.p_astro as GWCelery computes it; em_bright: gw-ops' offline Monte Carlo, "
          f"unchanged; {len(rows)} events in {elapsed:.2f} s including imports)")


if __name__ == "__main__":
    main()
