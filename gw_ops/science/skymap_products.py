"""Products made from a multi-order sky map: plots, flattened map, credible-region checks.

All functions take and return bytes (FITS or PNG file content), so tasks pass GraceDB
files straight through.  Plots and the flattened map come from ligo.skymap's own
command-line tools (``ligo-skymap-plot``, ``ligo-skymap-plot-volume``,
``ligo-skymap-flatten``) run in-process on temporary files, so they look exactly like
the LVK products.  Matplotlib is forced to the Agg backend.

:func:`toy_sky_map` makes a small, valid 3D multi-order sky map without BAYESTAR, for
tests and demos of the downstream steps.

Heavy libraries (ligo.skymap, astropy, healpy, matplotlib) are imported inside the
functions: the DAG processor imports this module.
"""
from __future__ import annotations

import gzip
import os
import tempfile
from contextlib import contextmanager
from typing import Iterator, Sequence

#: Default HEALPix resolution of the flattened map.  BAYESTAR refines to nside 2048,
#: whose flat map would take 1.6 GB of memory; 512 (0.11 deg pixels) is far finer than
#: any CBC credible region and cheap here.
DEFAULT_FLATTEN_NSIDE = 512
#: Volume-plot resolution (dots per inch) for a full-quality product.
VOLUME_DPI = 300
#: Volume-plot resolution of the cheap option (tests, demos): ~100x fewer render pixels.
VOLUME_DPI_CHEAP = 30


@contextmanager
def _files(fits_bytes: bytes, suffix: str = ".fits") -> Iterator[tuple[str, str]]:
    """A temporary folder holding the input FITS; yields (input path, folder)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "input" + suffix)
        with open(path, "wb") as f:
            f.write(fits_bytes)
        yield path, folder


def _agg() -> None:
    """Select matplotlib's Agg backend (no display in workers)."""
    import matplotlib
    matplotlib.use("Agg", force=True)


def _read(fits_bytes: bytes):
    """The multi-order sky map table of a FITS file (flattened files are accepted)."""
    from ligo.skymap.io import fits

    with _files(fits_bytes) as (path, _):
        return fits.read_sky_map(path, moc=True)


def plot_allsky(fits_bytes: bytes, *, contours: Sequence[float] = (50, 90),
                annotate: bool = True) -> bytes:
    """All-sky Mollweide plot of the sky map, like ``ligo-skymap-plot``.

    Parameters
    ----------
    fits_bytes : bytes
        Multi-order (or flattened) FITS sky map.
    contours : sequence of float
        Credible levels (percent) to outline.
    annotate : bool
        Write the credible areas (deg2) on the plot.

    Returns
    -------
    bytes
        PNG file content.
    """
    _agg()
    from ligo.skymap.tool import ligo_skymap_plot

    with _files(fits_bytes) as (path, folder):
        out = os.path.join(folder, "skymap.png")
        args = [path, "-o", out]
        if annotate:
            args.append("--annotate")
        if contours:
            args += ["--contour", *[f"{c:g}" for c in contours]]
        ligo_skymap_plot.main(args)
        _close_figures()
        with open(out, "rb") as f:
            return f.read()


def plot_volume(fits_bytes: bytes, omp_threads: int = 0, *, cheap: bool = False,
                dpi: int | None = None, contours: Sequence[float] = (50, 90)) -> bytes:
    """Three-projection volume rendering, like ``ligo-skymap-plot-volume``.

    About 10 minutes on 2 cores here at full resolution: run it after the alert, at the
    lowest priority (setting ``plot_volume``).

    Parameters
    ----------
    fits_bytes : bytes
        Multi-order FITS sky map with distance columns.
    omp_threads : int
        OpenMP threads for the rendering (0: all cores).
    cheap : bool
        Render at ``VOLUME_DPI_CHEAP`` instead of ``VOLUME_DPI`` (for tests and demos).
    dpi : int, optional
        Explicit resolution (dots per inch), overriding ``cheap``.
    contours : sequence of float
        Credible levels (percent) to outline.

    Returns
    -------
    bytes
        PNG file content.
    """
    _agg()
    from ligo.skymap.tool import ligo_skymap_plot_volume

    from gw_ops.science.bayestar import openmp_threads

    resolution = dpi or (VOLUME_DPI_CHEAP if cheap else VOLUME_DPI)
    with _files(fits_bytes) as (path, folder):
        out = os.path.join(folder, "volume.png")
        args = [path, "-o", out, "--annotate", "--dpi", str(resolution)]
        if contours:
            args += ["--contour", *[f"{c:g}" for c in contours]]
        with openmp_threads(omp_threads):
            ligo_skymap_plot_volume.main(args)
        _close_figures()
        with open(out, "rb") as f:
            return f.read()


def _close_figures() -> None:
    """Free the figures the tools left open (workers live long)."""
    from matplotlib import pyplot as plt
    plt.close("all")


def flatten(fits_bytes: bytes, nside: int | None = None, *, compress: bool = True) -> bytes:
    """Flattened (single-resolution, NESTED) copy of a multi-order sky map.

    Parameters
    ----------
    fits_bytes : bytes
        Multi-order FITS sky map.
    nside : int, optional
        HEALPix resolution; ``DEFAULT_FLATTEN_NSIDE`` when omitted.
    compress : bool
        Return gzip-compressed content (``bayestar.fits.gz``), else plain FITS.

    Returns
    -------
    bytes
        FITS file content (gzip-compressed when ``compress``).
    """
    from ligo.skymap.tool import ligo_skymap_flatten

    with _files(fits_bytes) as (path, folder):
        out = os.path.join(folder, "flat.fits")
        ligo_skymap_flatten.main([path, out, "--nside", str(nside or DEFAULT_FLATTEN_NSIDE)])
        with open(out, "rb") as f:
            content = f.read()
    return gzip.compress(content, compresslevel=6) if compress else content


def _crossmatch(fits_bytes: bytes, ra_deg: float | None, dec_deg: float | None,
                credible: Sequence[float]):
    from ligo.skymap.postprocess.crossmatch import crossmatch

    skymap = _read(fits_bytes)
    coordinates = None
    if ra_deg is not None:
        import astropy.units as u
        from astropy.coordinates import SkyCoord
        coordinates = SkyCoord(ra_deg * u.deg, dec_deg * u.deg)
    return crossmatch(skymap, coordinates, contours=tuple(credible))


def searched_probability(fits_bytes: bytes, ra_deg: float, dec_deg: float) -> float:
    """Probability of the smallest credible region that contains a position.

    Parameters
    ----------
    fits_bytes : bytes
        Multi-order (or flattened) FITS sky map.
    ra_deg, dec_deg : float
        Position (degrees, ICRS).

    Returns
    -------
    float
        Searched probability in [0, 1]: 0.3 means the position lies on the 30 % contour.
    """
    return float(_crossmatch(fits_bytes, ra_deg, dec_deg, ()).searched_prob)


def contains(fits_bytes: bytes, ra_deg: float, dec_deg: float, credible: float = 0.9) -> bool:
    """Whether a position lies inside the sky map's ``credible`` region.

    Parameters
    ----------
    fits_bytes : bytes
        Multi-order (or flattened) FITS sky map.
    ra_deg, dec_deg : float
        Position (degrees, ICRS), e.g. the injected source.
    credible : float
        Credible level as a fraction in (0, 1].

    Returns
    -------
    bool
    """
    return searched_probability(fits_bytes, ra_deg, dec_deg) <= credible


def area_deg2(fits_bytes: bytes, credible: float = 0.9) -> float:
    """Area of the smallest region holding ``credible`` of the probability (deg2).

    Parameters
    ----------
    fits_bytes : bytes
        Multi-order (or flattened) FITS sky map.
    credible : float
        Credible level as a fraction in (0, 1].

    Returns
    -------
    float
        Area in square degrees.
    """
    return float(_crossmatch(fits_bytes, None, None, (credible,)).contour_areas[0])


def searched_area_deg2(fits_bytes: bytes, ra_deg: float, dec_deg: float) -> float:
    """Area (deg2) of the smallest credible region that contains a position."""
    return float(_crossmatch(fits_bytes, ra_deg, dec_deg, ()).searched_area)


def toy_sky_map(ra_deg: float = 120.0, dec_deg: float = -30.0, sigma_deg: float = 5.0,
                distance_mpc: float = 100.0, distance_sigma_mpc: float = 20.0,
                order: int = 4) -> bytes:
    """A small 3D multi-order FITS sky map: a Gaussian spot at one distance; no BAYESTAR.

    Parameters
    ----------
    ra_deg, dec_deg : float
        Centre of the spot (degrees).
    sigma_deg : float
        Angular width of the spot (degrees).
    distance_mpc, distance_sigma_mpc : float
        Location and scale of the distance ansatz in every pixel (Mpc).
    order : int
        HEALPix order of all pixels (nside = 2**order; 4 gives 3072 pixels).

    Returns
    -------
    bytes
        FITS file content readable by ligo.skymap (``moc=True``), with PROBDENSITY
        (1/sr), DISTMU, DISTSIGMA (Mpc) and DISTNORM (1/Mpc2) columns.
    """
    import healpy as hp
    import numpy as np
    from astropy.table import Table
    from ligo.skymap import distance, moc
    from ligo.skymap.io import fits

    nside = 2 ** order
    npix = hp.nside2npix(nside)
    ipix = np.arange(npix)
    theta, phi = hp.pix2ang(nside, ipix, nest=True)
    centre = hp.ang2vec(np.radians(90.0 - dec_deg), np.radians(ra_deg))
    cos_angle = np.clip(hp.ang2vec(theta, phi) @ centre, -1, 1)
    weight = np.exp(-0.5 * (np.degrees(np.arccos(cos_angle)) / sigma_deg) ** 2)
    prob = weight / weight.sum()
    mu, sigma, norm = distance.moments_to_parameters(
        np.full(npix, distance_mpc), np.full(npix, distance_sigma_mpc))
    table = Table({
        "UNIQ": moc.nest2uniq(np.int8(order), ipix.astype(np.int64)),
        "PROBDENSITY": prob / hp.nside2pixarea(nside),
        "DISTMU": mu, "DISTSIGMA": sigma, "DISTNORM": norm,
    })
    table.meta.update({"objid": "toy", "instruments": {"H1", "L1", "V1"},
                       "gps_time": 1400000000.0, "distmean": distance_mpc,
                       "diststd": distance_sigma_mpc, "creator": "gw_ops.science.skymap_products"})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "toy.multiorder.fits")
        fits.write_sky_map(path, table, moc=True)
        with open(path, "rb") as f:
            return f.read()
