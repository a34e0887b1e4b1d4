"""JavaScript number rules of :mod:`._js` over NumPy arrays, for the batch decision.

Each function gives, element by element, the same double as its scalar twin: ``Math.round``
halves up (``floor`` then a compare, never ``np.round``, which rounds halves to even),
``Math.min``/``Math.max`` let NaN win (``np.minimum``/``np.maximum`` do), and division by
zero gives ±Infinity or NaN (IEEE division, warnings silenced by the caller).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def jround(x: FloatArray) -> FloatArray:
    """``Math.round``: nearest integer, halves toward +infinity; NaN and ±inf pass."""
    whole: FloatArray = np.floor(x)
    whole += x - whole >= 0.5
    return whole


def round_to(x: FloatArray, digits: int = 0) -> FloatArray:
    """The reference's ``round(value, digits)``: ``Math.round(value * 10^d) / 10^d``."""
    if digits == 0:
        return jround(x)
    scale = 10.0**digits
    out: FloatArray = jround(x * scale) / scale
    return out


def truthy(x: FloatArray) -> BoolArray:
    """JavaScript truthiness of numbers: 0 and NaN are false."""
    out: BoolArray = (x != 0.0) & ~np.isnan(x)
    return out


def py_min(a: FloatArray, b: FloatArray) -> FloatArray:
    """Python's ``min(a, b)``: ``b`` only when ``b < a`` (a NaN ``b`` leaves ``a``)."""
    out: FloatArray = np.where(b < a, b, a)
    return out


def py_max(a: FloatArray, b: FloatArray) -> FloatArray:
    """Python's ``max(a, b)``: ``b`` only when ``b > a``."""
    out: FloatArray = np.where(b > a, b, a)
    return out


def round_basal(rate_u_h: FloatArray, per_unit: FloatArray) -> FloatArray:
    """Pump rounding of U/h rates: ``per_unit`` (20, or 40 on x23/x54 pumps) steps per U/h
    below 1 U/h, 0.05 U/h up to 10 U/h, 0.1 U/h above (each ``Math.round(r x s) / s``)."""
    steps = np.where(rate_u_h < 1.0, per_unit, np.where(rate_u_h < 10.0, 20.0, 10.0))
    out: FloatArray = jround(rate_u_h * steps)
    out /= steps
    return out


def trailing_run(flags: BoolArray) -> NDArray[np.intp]:
    """Per column of a time-major (T, N) array, how many ``True`` end it."""
    breaks = ~flags[::-1]
    run: NDArray[np.intp] = np.where(breaks.any(axis=0), breaks.argmax(axis=0), flags.shape[0])
    return run


def first_true(flags: BoolArray, default: int) -> NDArray[np.intp]:
    """Per column of a time-major (T, N) array, the index of the first ``True``, or
    ``default`` when there is none."""
    index: NDArray[np.intp] = np.where(flags.any(axis=0), flags.argmax(axis=0), default)
    return index
