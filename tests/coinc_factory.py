"""Build event files for uploads to GraceDB in tests: CBC ``coinc.xml`` and cWB text.

>>> from tests.coinc_factory import coinc_xml
>>> content = coinc_xml(gpstime=1400000000.25, snr=12.0, far=1e-9, instruments=("H1", "L1"))
>>> content.startswith(b"<?xml")
True

The coinc document is a real LIGO-LW file written with ``igwn_ligolw`` (process,
coinc_definer, time_slide, coinc_event, coinc_inspiral, sngl_inspiral and
coinc_event_map tables), the same shape the online CBC pipelines upload, so any
LIGO-LW reader accepts it.  Units: GPS seconds, Hz, solar masses.
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence

#: Search name each pipeline writes in its sngl_inspiral rows (informational only).
_PIPELINE_SEARCH = {"gstlal": "gstlal_inspiral", "pycbc": "pycbc_live", "spiir": "spiir",
                    "mbta": "MBTAOnline", "mbtaonline": "MBTAOnline"}


def _chirp_mass(mass1: float, mass2: float) -> float:
    """Chirp mass (solar masses) of two component masses (solar masses)."""
    return (mass1 * mass2) ** 0.6 / (mass1 + mass2) ** 0.2


def _zero(valid_columns: dict[str, str], column: str) -> object:
    """Neutral value of a LIGO-LW column: 0 for numbers, "" for strings."""
    kind = next(kind for name, kind in valid_columns.items()
                if name == column or name.rsplit(":", 1)[-1] == column)
    return "" if "string" in kind or kind in ("char_s", "char_v") else 0


def coinc_xml(gpstime: float, snr: float, far: float,
              instruments: Sequence[str] = ("H1", "L1"), pipeline: str = "gstlal",
              masses: tuple[float, float] = (1.4, 1.4),
              single_snrs: Sequence[float] | None = None) -> bytes:
    """A CBC ``coinc.xml`` with one coincidence of the given detectors.

    Parameters
    ----------
    gpstime : float
        Merger (end) time, GPS s; kept to the nanosecond.
    snr : float
        Network SNR (coinc_inspiral ``snr``).
    far : float
        False alarm rate, Hz (coinc_inspiral ``combined_far``).
    instruments : sequence of str
        Detectors with a trigger, e.g. ``("H1", "L1", "V1")``.
    pipeline : str
        Pipeline name (recorded in process and sngl_inspiral rows).
    masses : (float, float)
        Component masses, solar masses.
    single_snrs : sequence of float, optional
        Per-detector SNRs; by default the network SNR shared equally
        (``snr / sqrt(len(instruments))`` each).

    Returns
    -------
    bytes
        The LIGO-LW XML document.
    """
    from igwn_ligolw import ligolw, lsctables
    from igwn_ligolw import utils as ligolw_utils

    instruments = tuple(instruments)
    if not instruments:
        raise ValueError("a coincidence needs at least one detector")
    if single_snrs is None:
        single_snrs = [snr / math.sqrt(len(instruments))] * len(instruments)
    if len(single_snrs) != len(instruments):
        raise ValueError("one single-detector SNR per instrument is needed")
    end_time = math.floor(gpstime)
    end_time_ns = int(round((gpstime - end_time) * 1e9))
    if end_time_ns == 1_000_000_000:  # rounding reached the next second
        end_time, end_time_ns = end_time + 1, 0
    mass1, mass2 = masses
    mchirp = _chirp_mass(mass1, mass2)
    ifos = ",".join(sorted(instruments))

    document = ligolw.Document()
    root = document.appendChild(ligolw.LIGO_LW())

    process_table = root.appendChild(lsctables.ProcessTable.new())
    process = process_table.RowType(
        process_id=0, program=_PIPELINE_SEARCH.get(pipeline.lower(), pipeline),
        version="0", cvs_repository="", cvs_entry_time=None, comment="tests.coinc_factory",
        is_online=1, node="localhost", username="test", unix_procid=0,
        start_time=end_time, end_time=end_time, jobid=0, domain="", instruments=ifos)
    process_table.append(process)

    definer_table = root.appendChild(lsctables.CoincDefTable.new())
    definer_table.append(definer_table.RowType(
        coinc_def_id=0, search="inspiral", search_coinc_type=0,
        description="sngl_inspiral<-->sngl_inspiral coincidences"))

    slide_table = root.appendChild(lsctables.TimeSlideTable.new())
    for ifo in instruments:
        slide_table.append(slide_table.RowType(time_slide_id=0, instrument=ifo, offset=0.0,
                                               process_id=0))

    coinc_table = root.appendChild(lsctables.CoincTable.new())
    coinc_table.append(coinc_table.RowType(
        coinc_event_id=0, process_id=0, coinc_def_id=0, time_slide_id=0,
        instruments=ifos, nevents=len(instruments), likelihood=snr ** 2 / 2))

    coinc_inspiral_table = root.appendChild(lsctables.CoincInspiralTable.new())
    coinc_inspiral_table.append(coinc_inspiral_table.RowType(
        coinc_event_id=0, ifos=ifos, end_time=end_time, end_time_ns=end_time_ns,
        mass=mass1 + mass2, mchirp=mchirp, minimum_duration=10.0, snr=snr,
        false_alarm_rate=far, combined_far=far))

    sngl_table = root.appendChild(lsctables.SnglInspiralTable.new())
    map_table = root.appendChild(lsctables.CoincMapTable.new())
    for event_id, (ifo, single_snr) in enumerate(zip(instruments, single_snrs, strict=True)):
        # Every column gets a value: some LIGO-LW readers mishandle empty trailing cells.
        row = sngl_table.RowType(**{column: _zero(sngl_table.validcolumns, column)
                                    for column in sngl_table.columnnames})
        row.process_id = 0
        row.event_id = event_id
        row.ifo = ifo
        row.search = _PIPELINE_SEARCH.get(pipeline.lower(), pipeline)
        row.channel = "GDS-CALIB_STRAIN"
        row.end_time, row.end_time_ns = end_time, end_time_ns
        row.mass1, row.mass2, row.mchirp = mass1, mass2, mchirp
        row.mtotal = mass1 + mass2
        row.eta = mass1 * mass2 / (mass1 + mass2) ** 2
        row.snr = single_snr
        row.chisq, row.chisq_dof = 1.0, 1
        row.coa_phase = 0.0
        row.eff_distance = 100.0
        row.template_duration = 10.0
        row.spin1z = row.spin2z = 0.0
        sngl_table.append(row)
        map_table.append(map_table.RowType(coinc_event_id=0, table_name="sngl_inspiral",
                                           event_id=event_id))

    buffer = io.BytesIO()
    ligolw_utils.write_fileobj(document, buffer)
    return buffer.getvalue()


def cwb_text(gpstime: float, duration: float, far: float, snr: float = 10.0,
             instruments: Sequence[str] = ("H1", "L1"), frequency: float = 150.0) -> bytes:
    """A cWB trigger file (``key: values`` lines) as cWB uploads to GraceDB.

    Parameters
    ----------
    gpstime : float
        Peak time, GPS s.
    duration : float
        Duration of the burst, s.
    far : float
        False alarm rate, Hz.
    snr : float
        Network SNR.
    instruments : sequence of str
        Detectors of the trigger.
    frequency : float
        Central frequency, Hz.
    """
    instruments = tuple(instruments)
    times = " ".join(f"{gpstime:.4f}" for _ in instruments)
    lines = [
        f"ifo:      {' '.join(instruments)}",
        f"time:     {gpstime:.4f} {times}",
        f"start:    {gpstime - duration / 2:.4f}",
        f"duration: {duration}",
        f"frequency: {frequency}",
        "bandwidth: 64",
        f"snr:      {snr}",
        f"rho:      {snr / math.sqrt(2):.3f}",
        "netCC:    0.9",
        f"likelihood: {snr ** 2:.3f}",
        "hrss:     1e-22",
        "phi:      0 0 120.0",
        "theta:    0 0 -30.0",
        f"far:      {far}",
    ]
    return ("\n".join(lines) + "\n").encode()
