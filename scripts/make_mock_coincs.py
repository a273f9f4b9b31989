#!/usr/bin/env python
"""Recipe that made the bundled mock CBC events in ``gw_ops/data/mock/``.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python scripts/make_mock_coincs.py [--out gw_ops/data/mock] [--seed 7]

It is deterministic for a given seed and lalsuite / ligo.skymap version (checked: a
rerun gives identical injections.json and identical coinc/PSD data; only the provenance
rows of the process and process_params tables differ: temp paths, pid, start time), and
it never runs BAYESTAR (about 30 s here).  Steps:

1. ``bayestar-sample-model-psd``: O4-like noise curves (H1, L1: the 175 Mpc
   ``aLIGO175MpcT1800545``; V1: ``AdVO4IntermediateT1800545``), 1 Hz steps up to
   2048 Hz.
2. ``lalapps_inspinj`` twice: a BNS population (both masses 1.2-2.0 Msun, 10-150 Mpc)
   and an NSBH population (BH 5-10 Msun, NS 1.2-2.0 Msun, 20-250 Mpc); isotropic sky
   and orientation, no spins, waveform ``TaylorF2threePointFivePN`` (needs no external
   ROM data, unlike SEOBNRv4_ROM which no wheel ships), f_low 30 Hz.
3. ``bayestar-realize-coincs`` for H1/L1/V1 with Gaussian measurement errors, single
   detector threshold 4, network threshold 12, SNR time series enabled; sub-threshold
   triggers are kept so that every coinc has all three detectors (like gstlal's
   uploads).
4. Split into one ``coinc.xml`` per coincidence.  ``bayestar-realize-coincs`` fills no
   false-alarm rate, so a toy FAR is written into ``coinc_inspiral.combined_far``:
   ``far = max(1e-4 Hz * exp(-3 * (snr_network - 8)), 1e-30 Hz)`` (a steep background
   tail; loud events get tiny FARs, as in real searches, floored like a pipeline's
   limited background).  ``process.program`` is set to
   ``gstlal_inspiral``.
5. Keep the first ``--count`` coincidences with network SNR >= ``--min-snr``, mixing
   BNS and NSBH, and write per event ``coinc.xml.gz`` and ``psd.xml.gz`` plus one
   ``injections.json`` (injected sky position, distance, masses, GPS time).
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
GPS_START = 1_300_000_000  # an O4-era GPS time; events are shifted to "now" on load
PSD_MODELS = {"H1": "aLIGO175MpcT1800545", "L1": "aLIGO175MpcT1800545",
              "V1": "AdVO4IntermediateT1800545"}
F_LOW_HZ = 30.0
WAVEFORM = "TaylorF2threePointFivePN"
POPULATIONS = {
    # name: (mass1 range Msun, mass2 range Msun, distance range kpc, number of injections)
    "BNS": ((1.2, 2.0), (1.2, 2.0), (10_000, 150_000), 40),
    "NSBH": ((5.0, 10.0), (1.2, 2.0), (20_000, 250_000), 40),
}
TIME_STEP_S = 1000


def run(cmd: list[str]) -> None:
    """Run one tool of the recipe, echoing it so the log is the recipe."""
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def make_population(name: str, seed: int, workdir: Path, psd_path: Path) -> Path:
    """Injections and realized coincidences for one population; returns the coinc file."""
    (m1_min, m1_max), (m2_min, m2_max), (d_min, d_max), count = POPULATIONS[name]
    inj = workdir / f"inj_{name}.xml"
    gps_start = GPS_START + (0 if name == "BNS" else 500_000)
    run([str(BIN / "lalapps_inspinj"), "--output", str(inj), "--seed", str(seed),
         "--f-lower", str(F_LOW_HZ), "--waveform", WAVEFORM, "--disable-spin",
         "--m-distr", "componentMass",
         "--min-mass1", str(m1_min), "--max-mass1", str(m1_max),
         "--min-mass2", str(m2_min), "--max-mass2", str(m2_max),
         "--min-mtotal", str(m1_min + m2_min), "--max-mtotal", str(m1_max + m2_max),
         "--d-distr", "volume", "--min-distance", str(d_min), "--max-distance", str(d_max),
         "--l-distr", "random", "--i-distr", "uniform",
         "--t-distr", "uniform", "--time-step", str(TIME_STEP_S),
         "--gps-start-time", str(gps_start),
         "--gps-end-time", str(gps_start + count * TIME_STEP_S)])
    coincs = workdir / f"coinc_{name}.xml"
    run([str(BIN / "bayestar-realize-coincs"), "--seed", str(seed), "-o", str(coincs),
         "--detector", "H1", "L1", "V1", "--reference-psd", str(psd_path),
         "--measurement-error", "gaussian-noise", "--snr-threshold", "4",
         "--net-snr-threshold", "12", "--keep-subthreshold", "--preserve-ids",
         str(inj)])
    return coincs


def toy_far_hz(network_snr: float) -> float:
    """Toy false-alarm rate (Hz) of a coinc from its network SNR (see module docstring)."""
    return max(1e-4 * math.exp(-3.0 * (network_snr - 8.0)), 1e-30)


def split_coincs(coinc_path: Path, population: str):
    """Yield ``(coinc_xml_bytes, info)`` per coincidence of one realize-coincs file."""
    from igwn_ligolw import lsctables, utils as ligolw_utils
    from igwn_ligolw.ligolw import LIGO_LW, Param

    xmldoc = ligolw_utils.load_filename(str(coinc_path))
    sims = {int(row.simulation_id): row for row in lsctables.SimInspiralTable.get_table(xmldoc)}
    # realize-coincs links each search coinc to its injection through a second
    # "sim_inspiral<-->coinc_event" coinc whose members are the sim row and the coinc
    members: dict[int, dict[str, int]] = {}
    for row in lsctables.CoincMapTable.get_table(xmldoc):
        members.setdefault(int(row.coinc_event_id), {})[row.table_name] = int(row.event_id)
    sim_of_coinc = {m["coinc_event"]: m["sim_inspiral"] for m in members.values()
                    if "coinc_event" in m and "sim_inspiral" in m}
    coinc_ids = sorted(sim_of_coinc)
    for coinc_id in coinc_ids:
        doc = ligolw_utils.load_filename(str(coinc_path))  # fresh copy to prune
        sngl_ids = {int(row.event_id) for row in lsctables.CoincMapTable.get_table(doc)
                    if int(row.coinc_event_id) == coinc_id and row.table_name == "sngl_inspiral"}
        sim_id = sim_of_coinc[coinc_id]
        coinc_table = lsctables.CoincTable.get_table(doc)
        coinc_table[:] = [r for r in coinc_table if int(r.coinc_event_id) == coinc_id]
        # the sim<->coinc link lives in a second coinc row; keep only the search coinc
        coinc_map_table = lsctables.CoincMapTable.get_table(doc)
        coinc_map_table[:] = [r for r in coinc_map_table
                              if int(r.coinc_event_id) == coinc_id
                              and r.table_name == "sngl_inspiral"]
        coinc_inspiral = lsctables.CoincInspiralTable.get_table(doc)
        coinc_inspiral[:] = [r for r in coinc_inspiral if int(r.coinc_event_id) == coinc_id]
        sngls = lsctables.SnglInspiralTable.get_table(doc)
        sngls[:] = [r for r in sngls if int(r.event_id) in sngl_ids]
        # a pipeline upload carries no injection table
        sim_table = lsctables.SimInspiralTable.get_table(doc)
        sim_table.parentNode.removeChild(sim_table)
        # drop SNR series of other coincs (LIGO_LW elements with an event_id Param)
        for elem in list(doc.getElementsByTagName(LIGO_LW.tagName)):
            params = [p for p in elem.childNodes if p.tagName == Param.tagName
                      and p.Name == "event_id"]
            if params and int(params[0].value) not in sngl_ids:
                elem.parentNode.removeChild(elem)
        # coinc_definer rows of sim coincs are harmless; keep process tables for provenance
        for row in lsctables.ProcessTable.get_table(doc):
            row.program = "gstlal_inspiral"
        (ci,) = coinc_inspiral
        ci.combined_far = toy_far_hz(ci.snr)
        ci.false_alarm_rate = ci.combined_far
        if not ci.ifos:
            ci.ifos = {r.ifo for r in sngls}
        sim = sims[sim_id]
        info = {
            "population": population,
            "ra_rad": float(sim.longitude),
            "dec_rad": float(sim.latitude),
            "ra_deg": math.degrees(sim.longitude),
            "dec_deg": math.degrees(sim.latitude),
            "distance_mpc": float(sim.distance),
            "mass1_msun": float(sim.mass1),
            "mass2_msun": float(sim.mass2),
            "spin1z": float(sim.spin1z),
            "spin2z": float(sim.spin2z),
            "inclination_rad": float(sim.inclination),
            "geocent_end_time_gps": float(sim.time_geocent),
            "coinc_end_time_gps": float(ci.end),
            "network_snr": float(ci.snr),
            "far_hz": float(ci.combined_far),
            "instruments": sorted(r.ifo for r in sngls),
            "waveform": WAVEFORM,
            "f_low_hz": F_LOW_HZ,
        }
        buf = io.BytesIO()
        ligolw_utils.write_fileobj(doc, buf)
        yield buf.getvalue(), info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gw_ops/data/mock"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--count", type=int, default=10, help="events to keep")
    parser.add_argument("--min-snr", type=float, default=13.0,
                        help="smallest network SNR kept")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        psd_path = workdir / "psd.xml"
        run([str(BIN / "bayestar-sample-model-psd"), "-o", str(psd_path)]
            + [arg for ifo, model in PSD_MODELS.items() for arg in (f"--{ifo}", model)])
        candidates = {}
        for offset, population in enumerate(POPULATIONS):
            coincs = make_population(population, args.seed + offset, workdir, psd_path)
            candidates[population] = [(xml, info) for xml, info in split_coincs(coincs, population)
                                      if info["network_snr"] >= args.min_snr
                                      and len(info["instruments"]) == 3]
            print(f"{population}: {len(candidates[population])} coincs with SNR >= "
                  f"{args.min_snr}", flush=True)
        # alternate BNS / NSBH so the bundle mixes both
        chosen = []
        pools = [list(c) for c in candidates.values()]
        while len(chosen) < args.count and any(pools):
            for pool in pools:
                if pool and len(chosen) < args.count:
                    chosen.append(pool.pop(0))

        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.mkdir(parents=True)
        psd_gz = gzip.compress(psd_path.read_bytes(), compresslevel=9, mtime=0)
        injections = []
        for index, (coinc_xml, info) in enumerate(chosen):
            folder = args.out / f"event{index:02d}"
            folder.mkdir()
            (folder / "coinc.xml.gz").write_bytes(gzip.compress(coinc_xml, 9, mtime=0))
            (folder / "psd.xml.gz").write_bytes(psd_gz)
            injections.append(dict(name=folder.name, **info))
        (args.out / "injections.json").write_text(json.dumps(
            {"recipe": "scripts/make_mock_coincs.py", "seed": args.seed,
             "psd_models": PSD_MODELS, "events": injections}, indent=1) + "\n")
    print(f"wrote {len(chosen)} events to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
