"""Sky maps of external triggers and their overlap with gravitational-wave sky maps.

An external notice gives a position (RA, Dec) and an error radius.  This module turns
that into a multi-order HEALPix sky map (a table of ``UNIQ`` cells and their
``PROBDENSITY`` in 1/sr, the format BAYESTAR writes), and computes the *overlap
integral* RAVEN divides the temporal coincidence FAR by.

Models
------
* Fermi GBM: core + tail model of GBM's systematic error (Connaughton et al. 2015,
  ApJS 216, 32): 90 % of the probability in a core of systematic width 3.7 deg and 10 %
  in a tail of 14 deg, each added in quadrature to the statistical 1-sigma radius of
  the notice.
* All others (Swift, INTEGRAL, IceCube, ...): one circular Gaussian whose width is the
  notice's error radius.

Each component is a Fisher (von Mises-Fisher) distribution on the sphere with
concentration ``kappa = 1 / sigma**2`` (sigma in radians), which is a Gaussian for small
sigma and stays normalised for sigma of tens of degrees.

Heavy imports (numpy, healpy, astropy, ligo.skymap) happen inside the functions: handler
modules import this one at DAG-parse time.
"""
from __future__ import annotations

import math
from typing import Any

#: GBM systematic error model: (weight, systematic sigma in degrees).
FERMI_CORE_TAIL: tuple[tuple[float, float], ...] = ((0.9, 3.7), (0.1, 14.0))

#: HEALPix order at which cells are first laid out before refinement (48 cells of
#: about 29 deg): coarse enough to be cheap, fine enough that a refinement radius of a
#: few degrees never misses the source.
_BASE_ORDER = 1

#: A cell is refined while it lies within this many widths (sigma) of the source: the
#: density beyond 6 sigma is below 1e-8 of the peak.
_REFINE_SIGMAS = 6.0

#: Cells are refined until they are this many times smaller than the narrowest width.
_CELLS_PER_SIGMA = 3.0


def fisher_density(cos_angle, sigma_deg: float):
    """Fisher density on the unit sphere (1/sr) at angular distance ``acos(cos_angle)``.

    Parameters
    ----------
    cos_angle : array_like
        Cosine of the angle between the source and the evaluation points.
    sigma_deg : float
        Width (deg); the concentration is ``1 / sigma**2`` with sigma in radians.

    Returns
    -------
    numpy.ndarray
        Probability density (1/sr); integrates to 1 over the sphere.
    """
    import numpy as np

    kappa = 1.0 / math.radians(sigma_deg) ** 2
    # kappa / (4 pi sinh kappa) * exp(kappa cos) written so that neither factor
    # overflows for the small sigmas (kappa ~ 1e7) of Swift or INTEGRAL.
    norm = kappa / (2 * math.pi * -math.expm1(-2 * kappa))
    return norm * np.exp(kappa * (np.asarray(cos_angle, dtype=float) - 1.0))


def model_components(pipeline: str, error_deg: float) -> list[tuple[float, float]]:
    """Mixture components ``(weight, sigma_deg)`` of the sky map of one notice.

    Parameters
    ----------
    pipeline : str
        External pipeline (``Fermi``, ``Swift``, ...).
    error_deg : float
        Error radius of the notice (deg), taken as a 1-sigma statistical width.
    """
    if pipeline == "Fermi":
        return [(weight, math.hypot(error_deg, systematic))
                for weight, systematic in FERMI_CORE_TAIL]
    return [(1.0, error_deg)]


def _unit_vector(ra_deg: float, dec_deg: float):
    import numpy as np

    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    return np.array([math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)])


def _order_for_width(sigma_deg: float, max_order: int) -> int:
    """Smallest HEALPix order whose cells are ``_CELLS_PER_SIGMA`` times finer than sigma."""
    for order in range(_BASE_ORDER, max_order + 1):
        cell_deg = math.degrees(math.sqrt(4 * math.pi / (12 * 4 ** order)))
        if cell_deg * _CELLS_PER_SIGMA <= sigma_deg:
            return order
    return max_order


def make_external_skymap(ra_deg: float, dec_deg: float, error_deg: float, pipeline: str,
                         max_order: int = 10):
    """Multi-order sky map of an external trigger.

    The map starts at order 1 and refines only the cells near the source, down to
    cells a third of the narrowest model width (or ``max_order``), so a 3-arcmin Swift
    position costs a few hundred cells rather than a full-sky order-12 map.

    Parameters
    ----------
    ra_deg, dec_deg : float
        Position (deg, ICRS/FK5).
    error_deg : float
        Error radius (deg); must be positive.
    pipeline : str
        External pipeline; ``Fermi`` selects the core + tail model.
    max_order : int
        Finest HEALPix order (order 10: 3.4 arcmin cells).

    Returns
    -------
    astropy.table.Table
        Columns ``UNIQ`` (int64) and ``PROBDENSITY`` (1/sr), normalised to a total
        probability of 1, sorted by ``UNIQ``.
    """
    import healpy as hp
    import numpy as np
    from astropy.table import Table

    if not error_deg > 0:
        raise ValueError(f"error radius must be positive, got {error_deg!r}")
    components = model_components(pipeline, error_deg)
    # Each component needs cells a few times finer than its width, but only where it
    # has probability: the core is resolved finely near the source, the tail coarsely
    # further out.
    needs = [(_order_for_width(sigma, max_order), _REFINE_SIGMAS * sigma)
             for _, sigma in components]
    target_order = max(_BASE_ORDER, max(order for order, _ in needs))
    source = _unit_vector(ra_deg, dec_deg)

    final_orders, final_pixels = [], []
    pixels = np.arange(12 * 4 ** _BASE_ORDER, dtype=np.int64)
    for order in range(_BASE_ORDER, target_order + 1):
        nside = 2 ** order
        if order == target_order:
            final_orders.append(np.full(len(pixels), order))
            final_pixels.append(pixels)
            break
        centres = np.stack(hp.pix2vec(nside, pixels, nest=True), axis=-1)
        angle = np.degrees(np.arccos(np.clip(centres @ source, -1, 1)))
        cell_radius = math.degrees(hp.max_pixrad(nside))
        refine = np.zeros(len(pixels), dtype=bool)
        for needed_order, reach_deg in needs:
            if order < needed_order:
                refine |= angle <= reach_deg + cell_radius
        final_orders.append(np.full(int((~refine).sum()), order))
        final_pixels.append(pixels[~refine])
        pixels = (pixels[refine][:, None] * 4 + np.arange(4)).ravel()

    orders = np.concatenate(final_orders)
    ipix = np.concatenate(final_pixels)
    vectors = np.empty((len(ipix), 3))
    for order in np.unique(orders):
        selected = orders == order
        vectors[selected] = np.stack(hp.pix2vec(2 ** int(order), ipix[selected], nest=True),
                                     axis=-1)
    cos_angle = np.clip(vectors @ source, -1, 1)
    density = sum(weight * fisher_density(cos_angle, sigma) for weight, sigma in components)
    area = 4 * np.pi / (12 * 4.0 ** orders)
    density = density / np.sum(density * area)  # cell-centre sampling loses a little
    uniq = 4 * 4 ** orders.astype(np.int64) + ipix
    order_by_uniq = np.argsort(uniq)
    return Table({"UNIQ": uniq[order_by_uniq], "PROBDENSITY": density[order_by_uniq]})


def write_skymap_bytes(table, meta: dict[str, Any] | None = None) -> bytes:
    """Multi-order FITS file of a sky map table (as BAYESTAR writes them).

    Parameters
    ----------
    table : astropy.table.Table
        ``UNIQ`` and ``PROBDENSITY`` columns.
    meta : dict, optional
        Header values passed to ``ligo.skymap.io.write_sky_map`` (e.g. ``gps_time``,
        ``objid``, ``instruments``).
    """
    import os
    import tempfile

    from ligo.skymap.io import write_sky_map

    table = table.copy()
    table.meta.update(meta or {})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "skymap.multiorder.fits")
        write_sky_map(path, table, moc=True)
        with open(path, "rb") as f:
            return f.read()


def read_skymap_bytes(content: bytes):
    """Multi-order sky map table (``UNIQ``, ``PROBDENSITY``) from FITS bytes.

    Flat (single-resolution) maps are converted to multi-order form.
    """
    import os
    import tempfile

    from ligo.skymap.io import read_sky_map

    suffix = ".fits.gz" if content[:2] == b"\x1f\x8b" else ".fits"
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "skymap" + suffix)
        with open(path, "wb") as f:
            f.write(content)
        table = read_sky_map(path, moc=True)
    return table["UNIQ", "PROBDENSITY"]


def _nested_ranges(uniq, max_order: int):
    """Half-open ranges of nested pixel indices at ``max_order`` covered by UNIQ cells."""
    import numpy as np

    uniq = np.asarray(uniq, dtype=np.int64)
    order = (np.floor(np.log2(uniq) / 2)).astype(np.int64) - 1
    ipix = uniq - 4 * (np.int64(4) ** order)
    shift = 2 * (max_order - order)
    return ipix << shift, (ipix + 1) << shift


def overlap_integral(skymap_a, skymap_b) -> float:
    """Sky-map overlap integral ``4 pi * integral(rho_a * rho_b dOmega)``.

    It is 1 when either map is uniform, larger when the maps agree, smaller when they
    exclude each other; RAVEN divides the temporal coincidence FAR by it.  Both maps
    are piecewise constant on their cells, so the integral is exact: the sphere is cut
    at every cell boundary of either map and each piece contributes its area times both
    densities.

    Parameters
    ----------
    skymap_a, skymap_b : astropy.table.Table
        Multi-order sky maps with ``UNIQ`` and ``PROBDENSITY`` (1/sr).

    Returns
    -------
    float
        The overlap integral (dimensionless).
    """
    import numpy as np

    def order_of(table):
        return int(np.floor(np.log2(np.max(table["UNIQ"])) / 2)) - 1

    max_order = max(order_of(skymap_a), order_of(skymap_b))
    pieces = []
    for table in (skymap_a, skymap_b):
        start, stop = _nested_ranges(table["UNIQ"], max_order)
        by_start = np.argsort(start)
        pieces.append((start[by_start], stop[by_start],
                       np.asarray(table["PROBDENSITY"], dtype=float)[by_start]))
    total_pixels = 12 * 4 ** max_order
    edges = np.union1d(np.concatenate([pieces[0][0], pieces[0][1]]),
                       np.concatenate([pieces[1][0], pieces[1][1]]))
    edges = edges[(edges >= 0) & (edges <= total_pixels)]
    lengths = np.diff(edges).astype(float)
    left = edges[:-1]
    product = np.ones(len(left))
    for start, stop, density in pieces:
        index = np.searchsorted(start, left, side="right") - 1
        inside = (index >= 0) & (left < stop[np.clip(index, 0, None)])
        product *= np.where(inside, density[np.clip(index, 0, None)], 0.0)
    pixel_area = 4 * np.pi / total_pixels
    return float(4 * np.pi * np.sum(product * lengths * pixel_area))


def probability_within(table, ra_deg: float, dec_deg: float, radius_deg: float) -> float:
    """Probability of a sky map within ``radius_deg`` of a position (cell centres)."""
    import healpy as hp
    import numpy as np

    uniq = np.asarray(table["UNIQ"], dtype=np.int64)
    order = (np.floor(np.log2(uniq) / 2)).astype(np.int64) - 1
    ipix = uniq - 4 * (np.int64(4) ** order)
    source = _unit_vector(ra_deg, dec_deg)
    vectors = np.empty((len(uniq), 3))
    for value in np.unique(order):
        selected = order == value
        vectors[selected] = np.stack(hp.pix2vec(2 ** int(value), ipix[selected], nest=True),
                                     axis=-1)
    inside = vectors @ source >= math.cos(math.radians(radius_deg))
    area = 4 * np.pi / (12 * 4.0 ** order)
    return float(np.sum(np.asarray(table["PROBDENSITY"])[inside] * area[inside]))
