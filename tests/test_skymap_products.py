"""Sky-map products on a tiny toy sky map (order 3, no BAYESTAR)."""
from __future__ import annotations

import gzip
import math

import pytest

from gw_ops.science import skymap_products as sp

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def toy():
    return sp.toy_sky_map(ra_deg=120.0, dec_deg=-30.0, sigma_deg=6.0, order=3)


def test_credible_area_and_containment(toy):
    # a 2D Gaussian spot: area(p) = -2 pi sigma^2 ln(1 - p), within pixelization error
    expected = -2 * math.pi * 6.0 ** 2 * math.log(1 - 0.9)
    assert sp.area_deg2(toy, 0.9) == pytest.approx(expected, rel=0.15)
    assert sp.area_deg2(toy, 0.5) < sp.area_deg2(toy, 0.9)
    assert sp.contains(toy, 120.0, -30.0, 0.9)
    assert sp.contains(toy, 126.0, -33.0, 0.9)
    assert not sp.contains(toy, 300.0, 30.0, 0.9)
    assert not sp.contains(toy, 120.0, -5.0, 0.5)
    # the brightest 7-degree pixel already holds about a quarter of the probability
    assert sp.searched_probability(toy, 120.0, -30.0) < 0.35


def test_plot_allsky_makes_a_png(toy):
    assert sp.plot_allsky(toy).startswith(PNG_MAGIC)


def test_plot_volume_cheap_makes_a_png(toy):
    assert sp.plot_volume(toy, omp_threads=1, cheap=True).startswith(PNG_MAGIC)


def test_flatten_keeps_the_map(toy):
    flat = sp.flatten(toy, nside=16)
    assert flat[:2] == b"\x1f\x8b"  # bayestar.fits.gz
    plain = gzip.decompress(flat)
    assert sp.area_deg2(plain, 0.9) == pytest.approx(sp.area_deg2(toy, 0.9), rel=0.05)
    assert sp.flatten(toy, nside=8, compress=False).startswith(b"SIMPLE")
