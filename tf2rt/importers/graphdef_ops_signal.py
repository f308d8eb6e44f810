"""The real FFT of audio front ends: RFFT as two matrix products (cos and sin of a fixed
frame length; works in every runtime) giving a `Complex` value that only ComplexAbs, Real
and Imag read; any other use of it is a clear UnsupportedError."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..limits import MAX_FOLD_BYTES, check_elements
from .graphdef import TV, Node
from .graphdef_ops import const, op
from .graphdef_ops_math import Complex, need_tv


@op("RFFT")
def _rfft(cv, node, ins):
    """MatMul with a cos and a sin matrix (|bins| = fft_length/2 + 1) on the last axis."""
    x, fl = ins
    n_fft = int(np.atleast_1d(const(fl, "fft_length"))[0])
    x = need_tv(x, "RFFT input")
    t = cv.plain(x)
    n = t.shape[-1]
    if n is None:
        raise UnsupportedError("RFFT of a dynamic-length axis")
    bins = n_fft // 2 + 1
    if n_fft < 1:
        raise UnsupportedError(f"RFFT fft_length {n_fft}")
    check_elements((2, n, bins), 4, f"RFFT {node.name!r} cos/sin matrices", MAX_FOLD_BYTES)
    k = np.arange(bins)[None, :]
    i = np.arange(n)[:, None]
    ang = 2 * np.pi * ((i * k) % n_fft) / n_fft
    used = (i < n_fft).astype(np.float64)  # samples beyond fft_length are cropped, missing ones are zero
    cos_m = (np.cos(ang) * used).astype(np.float32)
    sin_m = (-np.sin(ang) * used).astype(np.float32)
    re = cv.net.add_matrix_multiply(t, "none", cv.net.add_constant(cos_m.shape, cos_m, name=f"{node.name}/cos").output,
                                    "none", name=f"{node.name}/real").output
    im = cv.net.add_matrix_multiply(t, "none", cv.net.add_constant(sin_m.shape, sin_m, name=f"{node.name}/sin").output,
                                    "none", name=f"{node.name}/imag").output
    return [Complex(re, im, node.name)]


def _complex(v: Any, node: Node) -> Complex:
    if not isinstance(v, Complex):
        raise UnsupportedError(f"{node.op} of a value that does not come from RFFT")
    return v


@op("ComplexAbs")
def _complex_abs(cv, node, ins):
    """Sqrt(re² + im²)."""
    c = _complex(ins[0], node)
    net = cv.net
    r2 = net.add_elementwise(c.re, c.re, "prod", name=f"{node.name}/re2").output
    i2 = net.add_elementwise(c.im, c.im, "prod", name=f"{node.name}/im2").output
    s = net.add_elementwise(r2, i2, "sum", name=f"{node.name}/sum").output
    return [TV(net.add_unary(s, "sqrt", name=node.name).output)]


@op("Real", "Imag")
def _real_imag(cv, node, ins):
    """The real or imaginary part of an RFFT."""
    c = _complex(ins[0], node)
    t = c.re if node.op == "Real" else c.im
    return [TV(cv.net.add_identity(t, name=node.name).output)]
