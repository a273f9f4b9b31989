"""p_astro.png and em_bright.png thumbnails: valid PNGs of the documented size whose pixels
follow the values."""
from __future__ import annotations

import io
import math
import struct
import subprocess
import sys

import pytest

from gw_ops.science.classification_plots import (
    classification_plots,
    percent_label,
    plot_em_bright,
    plot_p_astro,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BNS_EVENT = {"BNS": 0.65, "NSBH": 0.20, "BBH": 0.059, "Terrestrial": 0.091}
PROPERTIES = {"HasNS": 0.9137, "HasRemnant": 0.3, "HasMassGap": 0.0}


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height (px) from the PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def _blue_fraction(data: bytes) -> float:
    """Fraction of the image's pixels in the bar colour (tab:blue)."""
    from matplotlib import image
    pixels = image.imread(io.BytesIO(data), format="png")[..., :3]
    blue = (abs(pixels[..., 0] - 0x1F / 255) < 0.02) & (abs(pixels[..., 1] - 0x77 / 255) < 0.02) \
        & (abs(pixels[..., 2] - 0xB4 / 255) < 0.02)
    return float(blue.mean())


@pytest.mark.parametrize("probability, text", [
    (1.0, "100%"), (0.0, "0%"), (0.995, ">99%"), (0.99, "99%"), (0.005, "<1%"),
    (0.01, "1%"), (0.534, "53%"), (0.5, "50%")])
def test_percent_label(probability, text):
    assert percent_label(probability) == text


def test_p_astro_png_size_and_bars_follow_values():
    image = plot_p_astro(BNS_EVENT)
    assert _png_size(image) == (250, 200)
    terrestrial = plot_p_astro({"BNS": 0.001, "NSBH": 0.0, "BBH": 0.0, "Terrestrial": 0.999})
    assert _png_size(terrestrial) == (250, 200)
    assert terrestrial != image
    # total bar length is the sum of the probabilities (1) either way; one long bar vs four
    assert _blue_fraction(image) > 0.05 and _blue_fraction(terrestrial) > 0.05
    # one bar alone: its area grows with its probability, none is drawn at 0
    lengths = [_blue_fraction(plot_p_astro({"BNS": p, "NSBH": 0.0, "BBH": 0.0,
                                            "Terrestrial": 0.0})) for p in (0.0, 0.2, 0.5, 0.9)]
    assert lengths == sorted(lengths) and lengths[0] < 0.001 < lengths[1]
    # proportional up to the percentage text, which covers part of a short bar
    assert lengths[3] / lengths[1] == pytest.approx(0.9 / 0.2, rel=0.25)


def test_em_bright_png_size_and_bars_follow_values():
    image = plot_em_bright(PROPERTIES)
    assert _png_size(image) == (300, 100)
    none = plot_em_bright({"HasNS": 0.0, "HasRemnant": 0.0, "HasMassGap": 0.0})
    full = plot_em_bright({"HasNS": 1.0, "HasRemnant": 1.0, "HasMassGap": 1.0})
    assert len({image, none, full}) == 3
    fractions = [_blue_fraction(png) for png in (none, image, full)]
    assert fractions == sorted(fractions) and fractions[0] < 0.001 < fractions[1]
    assert plot_em_bright(PROPERTIES) == image  # reproducible bytes


@pytest.mark.parametrize("values", [
    {}, {"BNS": 1.2, "Terrestrial": 0.0}, {"BNS": -0.1}, {"BNS": math.nan}])
def test_bad_values_raise(values):
    with pytest.raises(ValueError):
        plot_p_astro(values)
    with pytest.raises(ValueError):
        plot_em_bright(values)


def test_classification_plots_returns_both_files():
    files = classification_plots(BNS_EVENT, PROPERTIES)
    assert set(files) == {"p_astro.png", "em_bright.png"}
    assert files["p_astro.png"] == plot_p_astro(BNS_EVENT)
    assert files["em_bright.png"] == plot_em_bright(PROPERTIES)


def test_import_does_not_load_matplotlib():
    """matplotlib is imported only when a plot is drawn."""
    code = ("import sys, gw_ops.science.classification_plots\n"
            "print('matplotlib' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
