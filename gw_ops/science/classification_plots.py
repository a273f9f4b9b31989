"""Thumbnails of the source classification for the superevent: ``p_astro.png`` and
``em_bright.png``.

GraceDB shows them in a small widget, so they follow the look of GWCelery's (described,
not copied): a white style without grid, a few inches wide at 100 dpi, horizontal
bars on a linear 0-1 axis with no ticks, only the left spine, the category names as
labels and the percentage written beside the axis.

* ``p_astro.png`` (2.5 x 2 in, 250 x 200 px): one blue bar per category, the most
  probable at the top.
* ``em_bright.png`` (3 x 1 in, 300 x 100 px): per property a blue bar for p and a light
  grey bar for 1 - p, so every row reads like a progress bar; rows by name, HasMassGap
  at the top.

matplotlib 3.6 renamed the ``seaborn-white`` style GWCelery uses to
``seaborn-v0_8-white``; the first of the two names matplotlib knows is used.
Drawn with the Agg canvas on a private Figure (no pyplot state), so it is safe in
worker threads.  matplotlib is imported inside the functions.
"""
from __future__ import annotations

import io
import math
from typing import Mapping

#: Style names, newest first (matplotlib >= 3.6 has the first, older ones the second).
STYLE_NAMES = ("seaborn-v0_8-white", "seaborn-white")
#: Resolution (dots per inch) of both thumbnails.
DPI = 100
#: Figure sizes (inches).
P_ASTRO_SIZE_IN = (2.5, 2.0)
EM_BRIGHT_SIZE_IN = (3.0, 1.0)
#: Bar colours: probability and its complement.
BAR_COLOR = "tab:blue"
REST_COLOR = "lightgray"


def percent_label(probability: float) -> str:
    """Percentage text of a probability: "100%" and "0%" only when exact, ">99%" and
    "<1%" near the ends, else the whole percent (53%)."""
    if probability >= 1:
        return "100%"
    if probability <= 0:
        return "0%"
    if probability > 0.99:
        return ">99%"
    if probability < 0.01:
        return "<1%"
    return f"{round(100 * probability)}%"


def _checked(values: Mapping[str, float], what: str) -> dict[str, float]:
    """The mapping as floats in [0, 1]; ValueError otherwise."""
    if not values:
        raise ValueError(f"{what}: nothing to plot")
    numbers = {str(key): float(value) for key, value in values.items()}
    bad = {key: value for key, value in numbers.items()
           if not (math.isfinite(value) and 0.0 <= value <= 1.0)}
    if bad:
        raise ValueError(f"{what}: probabilities must lie in [0, 1], got {bad}")
    return numbers


def _style_name() -> str:
    """The white seaborn style under whichever name this matplotlib knows."""
    from matplotlib import style
    return next((name for name in STYLE_NAMES if name in style.available), "default")


def _horizontal_bars(rows: list[tuple[str, float]], size_in: tuple[float, float],
                     show_rest: bool) -> bytes:
    """PNG of one horizontal bar per (name, probability), the first row at the bottom."""
    from matplotlib import style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [name for name, _ in rows]
    probabilities = [p for _, p in rows]
    with style.context(_style_name()):
        figure = Figure(figsize=size_in, dpi=DPI)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.barh(names, probabilities, color=BAR_COLOR)
        if show_rest:
            axes.barh(names, [1 - p for p in probabilities], left=probabilities,
                      color=REST_COLOR)
        for row, probability in enumerate(probabilities):
            axes.annotate(percent_label(probability), (0, row), xytext=(3, 0),
                          textcoords="offset points", ha="left", va="center")
        axes.set_xlim(0, 1)
        axes.set_xticks([])
        axes.tick_params(axis="y", length=0)
        for side in ("top", "right", "bottom"):
            axes.spines[side].set_visible(False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def plot_p_astro(probabilities: Mapping[str, float]) -> bytes:
    """PNG thumbnail of p_astro (``p_astro.png``).

    Parameters
    ----------
    probabilities : mapping of str to float
        Category -> probability in [0, 1] (``BNS``, ``NSBH``, ``BBH``, ``Terrestrial``).

    Returns
    -------
    bytes
        PNG, 250 x 200 px; the most probable category at the top.
    """
    numbers = _checked(probabilities, "p_astro")
    rows = sorted(numbers.items(), key=lambda item: item[1])  # barh draws upwards
    return _horizontal_bars(rows, P_ASTRO_SIZE_IN, show_rest=False)


def plot_em_bright(properties: Mapping[str, float]) -> bytes:
    """PNG thumbnail of em_bright (``em_bright.png``).

    Parameters
    ----------
    properties : mapping of str to float
        Property -> probability in [0, 1] (``HasNS``, ``HasRemnant``, ``HasMassGap``).

    Returns
    -------
    bytes
        PNG, 300 x 100 px; rows in reverse name order from the bottom (HasRemnant,
        HasNS, HasMassGap), each with its complement in grey.
    """
    numbers = _checked(properties, "em_bright")
    rows = sorted(numbers.items(), reverse=True)
    return _horizontal_bars(rows, EM_BRIGHT_SIZE_IN, show_rest=True)


def classification_plots(probabilities: Mapping[str, float],
                         properties: Mapping[str, float]) -> dict[str, bytes]:
    """Both thumbnails, by the file name they are uploaded under.

    Parameters
    ----------
    probabilities : mapping of str to float
        p_astro (see :func:`plot_p_astro`).
    properties : mapping of str to float
        em_bright (see :func:`plot_em_bright`).

    Returns
    -------
    dict
        ``{"p_astro.png": PNG bytes, "em_bright.png": PNG bytes}``.
    """
    return {"p_astro.png": plot_p_astro(probabilities),
            "em_bright.png": plot_em_bright(properties)}
