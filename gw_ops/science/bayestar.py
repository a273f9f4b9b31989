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

Fast setting
------------
BAYESTAR's cost is nearly proportional to the number of SNR time-series samples it
integrates over arrival time at every sky pixel (measured here: 367 samples at
8192 Hz, 21 s; the same series at 2048 Hz, 8 s; 1024 Hz, 4.5 s; 2 threads).
``fast=True`` still runs real BAYESTAR on the same data, with each detector's SNR time
series decimated to ``fast_sample_rate_hz`` (2048 Hz by default, a rate typical of the
SNR series search pipelines upload; ``bayestar-realize-coincs`` writes 8192 Hz).  The
matched-filter output is complex with positive frequencies only, bounded by the PSD's
upper frequency (about 1.9 kHz here), so complex samples at 2048 Hz keep
its band; BAYESTAR interpolates between samples.  Series already at or below that rate
are left alone.

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


def _decimated_event(event, sample_rate_hz: float):
    """The event with every SNR time series decimated to ``sample_rate_hz``.

    Returns the event unchanged when it has no SNR series or they are already at or
    below that rate.  The trigger sample (the series' middle) is kept and the length
    stays odd, as BAYESTAR requires.
    """
    import lal
    from ligo.skymap.io.events.base import Event, SingleEvent

    class DecimatedSingle(SingleEvent):
        """A single-detector trigger whose SNR series is decimated; the rest delegated."""

        def __init__(self, base, series):
            self._base, self._series = base, series

        detector = property(lambda self: self._base.detector)
        snr = property(lambda self: self._base.snr)
        phase = property(lambda self: self._base.phase)
        time = property(lambda self: self._base.time)
        zerolag_time = property(lambda self: self._base.zerolag_time)
        psd = property(lambda self: self._base.psd)
        snr_series = property(lambda self: self._series)

    class DecimatedEvent(Event):
        """An event made of :class:`DecimatedSingle` triggers."""

        def __init__(self, base, singles):
            self._base, self._singles = base, tuple(singles)

        singles = property(lambda self: self._singles)
        template_args = property(lambda self: self._base.template_args)

    singles = list(event.singles)
    series_list = [single.snr_series for single in singles]
    if any(series is None for series in series_list):
        return event
    step = int(round(1.0 / (series_list[0].deltaT * sample_rate_hz)))
    if step < 2:
        return event
    decimated = []
    for single, series in zip(singles, series_list):
        length = len(series.data.data)
        middle = length // 2
        first = middle - (middle // step) * step  # so that the middle sample is kept
        data = series.data.data[first::step]
        if len(data) % 2 == 0:
            data = data[:-1]
        new = lal.CreateCOMPLEX8TimeSeries(series.name, series.epoch + first * series.deltaT,
                                           series.f0, series.deltaT * step,
                                           series.sampleUnits, len(data))
        new.data.data = data
        decimated.append(DecimatedSingle(single, new))
    return DecimatedEvent(event, decimated)


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
        event = _decimated_event(event, fast_sample_rate_hz)

    with openmp_threads(omp_threads):
        skymap = bayestar_localize(event, waveform=waveform or DEFAULT_WAVEFORM,
                                   f_low=f_low or DEFAULT_F_LOW_HZ)
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
