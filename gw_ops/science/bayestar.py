"""BAYESTAR rapid sky localization of a CBC coinc (ligo.skymap), as bytes in, bytes out.

:func:`localize` takes the pipeline's ``coinc.xml`` and ``psd.xml.gz`` exactly as
uploaded to GraceDB and returns the content of ``bayestar.multiorder.fits``.  It is what
the ``openmp`` pool runs; the number of OpenMP threads is set for the call only.

Waveform
--------
ligo.skymap's default ``o2-uberbank`` picks SEOBNRv4_ROM above 4 Msun total mass, whose
ROM data no wheel ships, so localization of NSBH/BBH candidates would fail here.  The
default of this module is therefore ``TaylorF2threePointFivePN``, an analytic
frequency-domain waveform that needs no data files; it only sets the template's
autocorrelation and horizon (SNR time series are used when present).

Where the time goes (profile, ``benchmarks/profile_bayestar.py``)
-----------------------------------------------------------------
One mock BNS event, 3 detectors, 1 thread, 8192 Hz series (367 samples after
BAYESTAR's own trim to the arrival-time window of +-22 ms): about 66 s of CPU, all but
0.2 s in BAYESTAR's C core.  About 7 s of it builds the distance-integral lookup tables
(3 tables of 400 x 400 adaptive integrals; fixed cost, independent of the series), the
rest integrates over the arrival-time samples at each of the 19 200 pixels of the
adaptive sky grid (about 40 % of it in the bicubic lookup of the distance integral, once
per pixel, polarization, inclination and time sample).  Reading the coinc and PSD
(0.02 s), conditioning (PSD interpolation, template, horizons: 0.1 s) and writing the
FITS file (0.06 s) are negligible; importing ligo.skymap costs 2.4 s once per process.
ligo.skymap offers no option that cuts the grid or the lookup tables without changing
the statistics; the number of time samples is the lever.

Fast setting
------------
``fast=True`` still runs real BAYESTAR on the same data, with each detector's SNR time
series decimated to ``fast_sample_rate_hz`` (samples taken every 8192/rate, keeping the
trigger sample in the middle): the cost of the sky grid falls in proportion, the
lookup tables stay.  A coinc without SNR series first gets BAYESTAR's own zero-noise
series made explicit (:func:`zero_noise_event`, identical to what BAYESTAR builds
inside), then the same decimation.  BAYESTAR interpolates the amplitude and phase of
the series between samples (cubic), so a coarser grid changes the map a little; how
much, against BAYESTAR's own scatter, is measured by ``benchmarks/bench_fidelity.py``
and recorded in the README.  Series already at or below the rate are left alone.
The local preset turns it on; production keeps the default.

ligo.skymap and lal are imported inside the functions: this module is imported by the
DAG processor.
"""
from __future__ import annotations

import io
import os
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

#: Waveform used when none is given (needs no external ROM data; see module docstring).
DEFAULT_WAVEFORM = "TaylorF2threePointFivePN"
#: Low frequency cutoff (Hz) when none is given; ligo.skymap's default too.
DEFAULT_F_LOW_HZ = 30.0
#: SNR series sample rate (Hz) of the fast setting.
DEFAULT_FAST_SAMPLE_RATE_HZ = 2048.0
#: ligo.skymap's PSD truncation (fraction of the PSD's top frequency); localize keeps it.
F_HIGH_TRUNCATE = 0.95
#: Half length (s) of the zero-noise SNR series built for coincs without any.
ZERO_NOISE_SERIES_HALF_LENGTH_S = 0.1


@contextmanager
def openmp_threads(count: int) -> Iterator[None]:
    """Run the enclosed block with ``count`` OpenMP threads in ligo.skymap's C code.

    Parameters
    ----------
    count : int
        Threads; values below 1 mean all cores.
    """
    from ligo.skymap import omp

    previous = omp.num_threads
    omp.num_threads = count if count >= 1 else (os.cpu_count() or 1)
    try:
        yield
    finally:
        omp.num_threads = previous


def replace_snr_series(event, series_list):
    """The event with each single-detector trigger's SNR series replaced; the rest delegated.

    Parameters
    ----------
    event : ligo.skymap.io.events.Event
        The coincidence as read from ``coinc.xml``.
    series_list : sequence of lal.COMPLEX8TimeSeries
        One series per trigger of ``event.singles``, in that order; BAYESTAR wants odd
        lengths, one sample rate, and the trigger time at the middle sample.
    """
    from ligo.skymap.io.events.base import Event, SingleEvent

    class ReplacedSingle(SingleEvent):
        """A single-detector trigger with another SNR series; the rest delegated."""

        def __init__(self, base, series):
            self._base, self._series = base, series

        detector = property(lambda self: self._base.detector)
        snr = property(lambda self: self._base.snr)
        phase = property(lambda self: self._base.phase)
        time = property(lambda self: self._base.time)
        zerolag_time = property(lambda self: self._base.zerolag_time)
        psd = property(lambda self: self._base.psd)
        snr_series = property(lambda self: self._series)

    class ReplacedEvent(Event):
        """An event made of :class:`ReplacedSingle` triggers."""

        def __init__(self, base, singles):
            self._base, self._singles = base, tuple(singles)

        singles = property(lambda self: self._singles)
        template_args = property(lambda self: self._base.template_args)

    return ReplacedEvent(event, [ReplacedSingle(single, series)
                                 for single, series in zip(event.singles, series_list)])


def zero_noise_event(event, waveform: str = DEFAULT_WAVEFORM, f_low: float = DEFAULT_F_LOW_HZ,
                     duration_s: float = ZERO_NOISE_SERIES_HALF_LENGTH_S):
    """The event with BAYESTAR's zero-noise SNR series made explicit, when it has none.

    For a coinc without SNR time series (GWCelery's test coinc; pipelines that upload
    none) BAYESTAR builds, inside ``condition``, each detector's series as the trigger's
    complex SNR times the template's normalized autocorrelation at the template's own
    sample rate (8192 Hz for the 2048 Hz band used here).  This function builds the same
    series with ligo.skymap's own functions (same template, PSD interpolation with the
    same ``f_high_truncate``, same autocorrelation), only longer (``duration_s`` each side
    of the trigger), so that it can be decimated like an uploaded series; BAYESTAR then
    trims it to its usual window.

    Parameters
    ----------
    event : ligo.skymap.io.events.Event
        The coincidence.
    waveform : str
        Template approximant, as given to BAYESTAR.
    f_low : float
        Template low frequency cutoff (Hz), as given to BAYESTAR.
    duration_s : float
        Half length (s) of the series built; longer than BAYESTAR's arrival-time window.

    Returns
    -------
    ligo.skymap.io.events.Event
        ``event`` itself when any trigger already has an SNR series or lacks an SNR.
    """
    singles = list(event.singles)
    if any(single.snr_series is not None or single.snr is None for single in singles):
        return event
    import lal
    import numpy as np
    from ligo.skymap.bayestar import filter as bayestar_filter

    template = bayestar_filter.sngl_inspiral_psd(waveform, f_min=f_low, **event.template_args)
    series_list = []
    for single in singles:
        noise = bayestar_filter.InterpolatedPSD(
            bayestar_filter.abscissa(single.psd), single.psd.data.data,
            f_high_truncate=F_HIGH_TRUNCATE)
        acor, sample_rate = bayestar_filter.autocorrelation(
            bayestar_filter.signal_psd_series(template, noise), duration_s)
        length = 2 * len(acor) - 1
        series = lal.CreateCOMPLEX8TimeSeries("zero-noise SNR", 0, 0, 1 / sample_rate,
                                              lal.StrainUnit, length)
        series.epoch = single.time - 0.5 * (length - 1) / sample_rate
        series.data.data = (single.snr * bayestar_filter.exp_i(single.phase)
                            * np.concatenate((np.conj(acor[:0:-1]), acor)))
        series_list.append(series)
    return replace_snr_series(event, series_list)


def _decimated_event(event, sample_rate_hz: float):
    """The event with every SNR time series decimated to ``sample_rate_hz``.

    Returns the event unchanged when it has no SNR series or they are already at or
    below that rate.  The trigger sample (the series' middle) is kept and the length
    stays odd, as BAYESTAR requires.
    """
    import lal

    series_list = [single.snr_series for single in event.singles]
    if any(series is None for series in series_list):
        return event
    step = int(round(1.0 / (series_list[0].deltaT * sample_rate_hz)))
    if step < 2:
        return event
    decimated = []
    for series in series_list:
        middle = len(series.data.data) // 2
        first = middle - (middle // step) * step  # so that the middle sample is kept
        # as many samples after the middle as before it: the length is odd
        data = series.data.data[first::step][:2 * (middle // step) + 1]
        new = lal.CreateCOMPLEX8TimeSeries(series.name, series.epoch + first * series.deltaT,
                                           series.f0, series.deltaT * step,
                                           series.sampleUnits, len(data))
        new.data.data = data
        decimated.append(new)
    return replace_snr_series(event, decimated)


def event_at_sample_rate(event, sample_rate_hz: float, waveform: str = DEFAULT_WAVEFORM,
                         f_low: float = DEFAULT_F_LOW_HZ):
    """The event with SNR series at ``sample_rate_hz`` (the fast setting's input).

    Uploaded series are decimated; a coinc without series gets BAYESTAR's zero-noise
    series (:func:`zero_noise_event`) first, then decimated.  Series already at or below
    the rate are left alone.
    """
    return _decimated_event(zero_noise_event(event, waveform, f_low), sample_rate_hz)


def import_localization_modules() -> None:
    """Import what :func:`localize` imports (ligo.skymap's BAYESTAR and FITS I/O, astropy).

    For a caller that runs :func:`localize` in a thread of its own while its own thread
    goes on importing (the classifications import astropy too): two threads importing
    astropy for the first time at once left ``astropy.units`` partly initialised
    (``KeyError: 'astropy.units.format.latex'``) in a fresh Celery worker.  Imported here
    first, in the caller's thread, nothing is left for the two to race over.
    """
    import astropy.io.fits  # noqa: F401
    import ligo.skymap.bayestar  # noqa: F401
    import ligo.skymap.io.events  # noqa: F401
    import ligo.skymap.io.fits  # noqa: F401


def localize(coinc_xml: bytes, psd_xml_gz: bytes, *, omp_threads: int = 0,
             waveform: str | None = None, f_low: float | None = None, fast: bool = False,
             fast_sample_rate_hz: float = DEFAULT_FAST_SAMPLE_RATE_HZ,
             disabled_detectors: tuple[str, ...] = ()) -> bytes:
    """Localize one coinc with BAYESTAR and return a multi-order FITS sky map.

    Parameters
    ----------
    coinc_xml : bytes
        LIGO-LW coinc document (gzip-compressed or not) with single-detector triggers
        and, ideally, SNR time series.
    psd_xml_gz : bytes
        LIGO-LW PSD document (gzip-compressed or not), one PSD per detector.
    omp_threads : int
        OpenMP threads for this call (0: all cores).
    waveform : str, optional
        Template approximant (``DEFAULT_WAVEFORM`` when omitted).
    f_low : float, optional
        Low frequency cutoff (Hz): ``DEFAULT_F_LOW_HZ`` when omitted.
    fast : bool
        Cheaper localization (see the module docstring): SNR series decimated to
        ``fast_sample_rate_hz``.
    fast_sample_rate_hz : float
        SNR series sample rate (Hz) of the fast setting.
    disabled_detectors : tuple of str
        Detectors whose triggers are ignored (e.g. after a data-quality veto).

    Returns
    -------
    bytes
        Multi-order (UNIQ) FITS file content, as ``bayestar.multiorder.fits``.  The
        header keyword ``RUNTIME`` holds BAYESTAR's own run time and ``WALLTIME`` the
        wall time of this whole call (s); ``FASTLOC`` says whether the fast setting ran.

    Raises
    ------
    ValueError
        When the coinc holds no coincidence or more than one.
    """
    started = time.perf_counter()
    from ligo.skymap.bayestar import localize as bayestar_localize
    from ligo.skymap.io import events, fits

    source = events.ligolw.open(io.BytesIO(coinc_xml), psd_file=io.BytesIO(psd_xml_gz),
                                coinc_def=None)
    if len(source) != 1:
        raise ValueError(f"expected one coincidence in coinc.xml, found {len(source)}")
    (event,) = source.values()
    if disabled_detectors:
        event = events.detector_disabled.DetectorDisabledEventSource(
            {0: event}, disabled_detectors, raises=False)[0]
    if fast:
        event = event_at_sample_rate(event, fast_sample_rate_hz, waveform or DEFAULT_WAVEFORM,
                                     f_low or DEFAULT_F_LOW_HZ)

    with openmp_threads(omp_threads):
        skymap = bayestar_localize(event, waveform=waveform or DEFAULT_WAVEFORM,
                                   f_low=f_low or DEFAULT_F_LOW_HZ,
                                   f_high_truncate=F_HIGH_TRUNCATE)
    fast_note = f" (fast setting: SNR series at {fast_sample_rate_hz:g} Hz)" if fast else ""
    skymap.meta["comment"] = "Localized by gw-ops with BAYESTAR" + fast_note
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bayestar.multiorder.fits")
        fits.write_sky_map(path, skymap, moc=True)
        content = _set_header(path, WALLTIME=(round(time.perf_counter() - started, 3),
                                              "[s] wall time of gw_ops.science.bayestar.localize"),
                              FASTLOC=(bool(fast), "gw-ops fast BAYESTAR setting"))
    return content


def settings_kwargs(settings) -> dict:
    """Keyword arguments of :func:`localize` from :class:`gw_ops.config.Settings`.

    Examples
    --------
    >>> from gw_ops.config import get_settings
    >>> sorted(settings_kwargs(get_settings(env={})))
    ['f_low', 'fast', 'fast_sample_rate_hz', 'omp_threads', 'waveform']
    """
    return {"omp_threads": settings.omp_threads_effective, "waveform": settings.bayestar_waveform,
            "f_low": settings.bayestar_f_low_hz, "fast": settings.bayestar_fast,
            "fast_sample_rate_hz": settings.bayestar_fast_sample_rate_hz}


def _set_header(path: str, **cards) -> bytes:
    """Add cards to the first table HDU of a FITS file and return its bytes."""
    from astropy.io import fits as astropy_fits

    with astropy_fits.open(path, mode="update") as hdus:
        for key, value in cards.items():
            hdus[1].header[key] = value
    with open(path, "rb") as f:
        return f.read()


def header(fits_bytes: bytes) -> dict:
    """Header of the sky-map table of a multi-order FITS file (as a plain dict)."""
    from astropy.io import fits as astropy_fits

    with astropy_fits.open(io.BytesIO(fits_bytes)) as hdus:
        return dict(hdus[1].header)
