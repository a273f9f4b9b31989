"""Bundled mock CBC events: realistic coincidences to feed the pipeline (MDC / playground).

The bundle in ``gw_ops/data/mock/`` holds ten simulated BNS and NSBH coincidences
(H1, L1, V1; network SNR 13-64; O4-like noise curves) made by
``scripts/make_mock_coincs.py`` with ``lalapps_inspinj`` and
``bayestar-realize-coincs``.  Each event has a ``coinc.xml.gz`` (what a search pipeline
uploads: coinc, single-detector triggers and their SNR time series) and the
``psd.xml.gz`` the pipeline would upload with it; ``injections.json`` records the
simulated signal (sky position, distance, masses) so tests can check a sky map against
the truth.

Loading an event is cheap (one small XML parse, no BAYESTAR) and this module imports
nothing heavy at import time.

Examples
--------
>>> from gw_ops.mock.events import list_mock_events, load_mock_event
>>> len(list_mock_events())
10
>>> event = load_mock_event(0, now_gps=1400000000.0)
>>> event.gps_time
1400000000.0
"""
from __future__ import annotations

import gzip
import io
import json
import math
import random
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

#: Folder of the bundle inside the ``gw_ops`` package.
BUNDLE_FOLDER = "data/mock"


@dataclass(frozen=True)
class Injection:
    """The simulated signal behind a mock event.

    Attributes
    ----------
    ra_rad, dec_rad : float
        Right ascension and declination (radians, ICRS/equatorial) *at the event's
        current GPS time*: when an event is shifted in time, the right ascension is
        rotated with the Earth so it stays the truth for the shifted coinc.
    distance_mpc : float
        Luminosity distance (Mpc).
    mass1_msun, mass2_msun : float
        Component masses in the detector frame (solar masses), ``mass1 >= mass2`` not
        guaranteed by the simulation.
    spin1z, spin2z : float
        Dimensionless aligned spin components (zero in this bundle).
    inclination_rad : float
        Inclination of the orbit to the line of sight (radians).
    gps_time : float
        Geocentric merger time (GPS seconds) after any shift.
    population : str
        ``"BNS"`` or ``"NSBH"``.
    """

    ra_rad: float
    dec_rad: float
    distance_mpc: float
    mass1_msun: float
    mass2_msun: float
    spin1z: float
    spin2z: float
    inclination_rad: float
    gps_time: float
    population: str

    @property
    def ra_deg(self) -> float:
        """Right ascension (degrees, 0-360)."""
        return math.degrees(self.ra_rad) % 360.0

    @property
    def dec_deg(self) -> float:
        """Declination (degrees)."""
        return math.degrees(self.dec_rad)


@dataclass(frozen=True)
class MockEventSummary:
    """One bundled event as listed by :func:`list_mock_events` (no files loaded).

    Attributes
    ----------
    index : int
        Position in the bundle (argument of :func:`load_mock_event`).
    name : str
        Folder name in the bundle, e.g. ``"event03"``.
    gps_time : float
        Coinc end time as bundled (GPS seconds), before any shift.
    network_snr : float
        Network SNR of the coinc (dimensionless).
    far_hz : float
        False-alarm rate written in the coinc (Hz).
    injection : Injection
        The simulated signal at its original (unshifted) time.
    """

    index: int
    name: str
    gps_time: float
    network_snr: float
    far_hz: float
    injection: Injection


@dataclass(frozen=True)
class MockEvent:
    """A mock event ready for upload to GraceDB.

    Attributes
    ----------
    name : str
        Bundle folder name.
    coinc_xml : bytes
        Uncompressed LIGO-LW ``coinc.xml`` with all end times (coinc, singles and SNR
        series epochs) shifted to ``gps_time``; SNR and FAR unchanged.
    psd_xml_gz : bytes
        Gzip-compressed LIGO-LW PSD file (``psd.xml.gz``) for H1, L1, V1.
    injection : Injection
        The simulated signal, consistent with the shifted coinc.
    gps_time : float
        Coinc end time (GPS seconds) after the shift.
    network_snr : float
        Network SNR (dimensionless).
    far_hz : float
        False-alarm rate (Hz).
    pipeline, search, group : str
        GraceDB event fields to upload with (``group`` is always ``"CBC"``).
    """

    name: str
    coinc_xml: bytes
    psd_xml_gz: bytes
    injection: Injection
    gps_time: float
    network_snr: float
    far_hz: float
    pipeline: str = "gstlal"
    search: str = "MDC"
    group: str = "CBC"


def _bundle():
    """The bundle folder as an importlib.resources Traversable."""
    return resources.files("gw_ops").joinpath(BUNDLE_FOLDER)


@lru_cache(maxsize=1)
def _manifest() -> dict[str, Any]:
    """Contents of ``injections.json`` (read once)."""
    return json.loads(_bundle().joinpath("injections.json").read_text())


def _injection_from_record(record: dict[str, Any]) -> Injection:
    return Injection(
        ra_rad=record["ra_rad"], dec_rad=record["dec_rad"],
        distance_mpc=record["distance_mpc"],
        mass1_msun=record["mass1_msun"], mass2_msun=record["mass2_msun"],
        spin1z=record["spin1z"], spin2z=record["spin2z"],
        inclination_rad=record["inclination_rad"],
        gps_time=record["geocent_end_time_gps"], population=record["population"])


def list_mock_events() -> list[MockEventSummary]:
    """The bundled events, in bundle order.

    Returns
    -------
    list of MockEventSummary
    """
    return [MockEventSummary(index=i, name=rec["name"], gps_time=rec["coinc_end_time_gps"],
                             network_snr=rec["network_snr"],
                             far_hz=rec["far_hz"], injection=_injection_from_record(rec))
            for i, rec in enumerate(_manifest()["events"])]


def _pick(index_or_random: int | str | None, rng: random.Random | None) -> int:
    """Bundle index from an int, an event name, or ``None``/``"random"``."""
    records = _manifest()["events"]
    if index_or_random is None or index_or_random == "random":
        return (rng or random.Random()).randrange(len(records))
    if isinstance(index_or_random, str):
        for i, rec in enumerate(records):
            if rec["name"] == index_or_random:
                return i
        raise KeyError(f"no mock event named {index_or_random!r}")
    if not 0 <= index_or_random < len(records):
        raise IndexError(f"mock event index {index_or_random} outside 0..{len(records) - 1}")
    return int(index_or_random)


def _rewrite_coinc(coinc_xml: bytes, shift_s: Any, snr_factor: float = 1.0) -> bytes:
    """Shift every time in a coinc document by ``shift_s`` and scale its SNRs.

    Parameters
    ----------
    coinc_xml : bytes
        LIGO-LW coinc document.
    shift_s : lal.LIGOTimeGPS or float
        Time shift (s); a ``LIGOTimeGPS`` keeps nanosecond precision.
    snr_factor : float
        Factor applied to the coinc's and the singles' SNR (1 keeps them).

    Returns
    -------
    bytes
        The rewritten, uncompressed document.
    """
    import lal
    from igwn_ligolw import ligolw, lsctables
    from igwn_ligolw import utils as ligolw_utils

    doc = ligolw_utils.load_fileobj(io.BytesIO(coinc_xml))
    for row in lsctables.CoincInspiralTable.get_table(doc):
        row.end = row.end + shift_s
        row.snr = row.snr * snr_factor
    for row in lsctables.SnglInspiralTable.get_table(doc):
        row.end = row.end + shift_s
        row.end_time_gmst = lal.GreenwichMeanSiderealTime(row.end)
        row.snr = row.snr * snr_factor
    for elem in doc.getElementsByTagName(ligolw.Time.tagName):  # SNR series epochs
        elem.pcdata = elem.pcdata + shift_s
    out = io.BytesIO()
    ligolw_utils.write_fileobj(doc, out)
    return out.getvalue()


def load_mock_event(index_or_random: int | str | None = None, now_gps: float | None = None,
                    pipeline: str = "gstlal", search: str = "MDC",
                    rng: random.Random | None = None) -> MockEvent:
    """Load one bundled event with its end time moved to ``now_gps``.

    Parameters
    ----------
    index_or_random : int, str or None
        Bundle index, event name (``"event03"``), or ``None``/``"random"`` for a random
        pick (drawn with ``rng``).
    now_gps : float, optional
        New coinc end time (GPS seconds); the current time when omitted.
    pipeline, search : str
        GraceDB pipeline and search to record on the event (the coinc's ``process``
        table names ``gstlal_inspiral`` whatever is chosen here).
    rng : random.Random, optional
        Random source of a random pick.

    Returns
    -------
    MockEvent
        FAR and SNR as bundled; the injection's right ascension rotated by the change
        of Greenwich sidereal time, so the injection remains the truth of the shifted
        coinc (the detector-frame geometry is unchanged by the shift).
    """
    import lal

    index = _pick(index_or_random, rng)
    record = _manifest()["events"][index]
    folder = _bundle().joinpath(record["name"])
    original_xml = gzip.decompress(folder.joinpath("coinc.xml.gz").read_bytes())
    psd_xml_gz = folder.joinpath("psd.xml.gz").read_bytes()

    new_end = lal.GPSTimeNow() if now_gps is None else lal.LIGOTimeGPS(repr(float(now_gps)))
    # shift from the exact (nanosecond) end time stored in the coinc, not the JSON float
    from igwn_ligolw import lsctables
    from igwn_ligolw import utils as ligolw_utils
    doc = ligolw_utils.load_fileobj(io.BytesIO(original_xml))
    (coinc_row,) = lsctables.CoincInspiralTable.get_table(doc)
    old_end = coinc_row.end
    shift = new_end - old_end
    coinc_xml = _rewrite_coinc(original_xml, shift)

    injection = _injection_from_record(record)
    old_geocent = lal.LIGOTimeGPS(repr(injection.gps_time))
    new_geocent = old_geocent + shift
    rotation_rad = (lal.GreenwichMeanSiderealTime(new_geocent)
                    - lal.GreenwichMeanSiderealTime(old_geocent))
    injection = replace(injection, ra_rad=(injection.ra_rad + rotation_rad) % (2 * math.pi),
                        gps_time=float(new_geocent))
    return MockEvent(name=record["name"], coinc_xml=coinc_xml, psd_xml_gz=psd_xml_gz,
                     injection=injection, gps_time=float(new_end),
                     network_snr=record["network_snr"], far_hz=record["far_hz"],
                     pipeline=pipeline, search=search)


def jittered_uploads(event: MockEvent, n: int, rng: random.Random | None = None, *,
                     snr_sigma: float = 1e-3, time_sigma_s: float = 1e-4) -> list[bytes]:
    """``n`` coinc uploads of the same signal, each slightly different.

    Like GWCelery's playground, which uploads one mock coinc 16 times with SNR jitter so
    that the preferred event among them is random.  Each upload multiplies all SNRs by
    ``1 + N(0, snr_sigma)`` and shifts all times by ``N(0, time_sigma_s)``, so the
    sky position, masses and FAR stay those of the signal.

    Parameters
    ----------
    event : MockEvent
        Event from :func:`load_mock_event`.
    n : int
        Number of uploads.
    rng : random.Random, optional
        Random source (a fresh unseeded one when omitted).
    snr_sigma : float
        Relative standard deviation of the SNR jitter (dimensionless).
    time_sigma_s : float
        Standard deviation of the time jitter (s); 0.1 ms by default, far below the
        superevent window.

    Returns
    -------
    list of bytes
        ``n`` uncompressed coinc.xml documents.
    """
    import lal

    rng = rng or random.Random()
    uploads = []
    for _ in range(n):
        shift = lal.LIGOTimeGPS(0, int(round(rng.gauss(0.0, time_sigma_s) * 1e9)))
        uploads.append(_rewrite_coinc(event.coinc_xml, shift, 1.0 + rng.gauss(0.0, snr_sigma)))
    return uploads


def coinc_summary(coinc_xml: bytes) -> dict[str, Any]:
    """Key numbers of a coinc document (for tests and logs).

    Parameters
    ----------
    coinc_xml : bytes
        Uncompressed LIGO-LW coinc.

    Returns
    -------
    dict
        ``gps_time`` (s), ``snr``, ``far_hz`` (Hz), ``mass1``, ``mass2`` (Msun, of the
        first single's template), ``singles``: {ifo: {"gps_time", "snr"}},
        ``snr_series_epochs`` (s).
    """
    from igwn_ligolw import ligolw, lsctables
    from igwn_ligolw import utils as ligolw_utils

    doc = ligolw_utils.load_fileobj(io.BytesIO(coinc_xml))
    (coinc,) = lsctables.CoincInspiralTable.get_table(doc)
    singles = lsctables.SnglInspiralTable.get_table(doc)
    return {
        "gps_time": float(coinc.end), "snr": float(coinc.snr), "far_hz": float(coinc.combined_far),
        "mass1": float(singles[0].mass1), "mass2": float(singles[0].mass2),
        "spin1z": float(singles[0].spin1z or 0.0), "spin2z": float(singles[0].spin2z or 0.0),
        "singles": {row.ifo: {"gps_time": float(row.end), "snr": float(row.snr)} for row in singles},
        "snr_series_epochs": [float(t.pcdata) for t in doc.getElementsByTagName(ligolw.Time.tagName)],
    }

