"""NvUtils buffer helpers: the header's worked examples, numpy, and TensorRT's own use of them."""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt.errors import ShapeError
from tf2rt.layouts import (
    from_tf_lstm,
    reorder_sub_buffers,
    reshape_weights,
    to_legacy_buffers,
    transpose_sub_buffers,
)

# NvUtils.h reshapeWeights example: input 0..35 with shape {C=3, N=2, W=3, H=2}, order {1, 0, 3, 2}.
RESHAPE_EXPECTED = [
    [[[0, 2, 4], [1, 3, 5]], [[12, 14, 16], [13, 15, 17]], [[24, 26, 28], [25, 27, 29]]],
    [[[6, 8, 10], [7, 9, 11]], [[18, 20, 22], [19, 21, 23]], [[30, 32, 34], [31, 33, 35]]],
]
# NvUtils.h reorderSubBuffers example: the output above, order {1, 0}, num = H = 2, size = W = 3
# applied to each stride of W*H elements.
REORDER_EXPECTED = [
    [[[1, 3, 5], [0, 2, 4]], [[13, 15, 17], [12, 14, 16]], [[25, 27, 29], [24, 26, 28]]],
    [[[7, 9, 11], [6, 8, 10]], [[19, 21, 23], [18, 20, 22]], [[31, 33, 35], [30, 32, 34]]],
]


def test_reshape_weights_header_example():
    out = reshape_weights(np.arange(36, dtype=np.float32), (3, 2, 3, 2), (1, 0, 3, 2))
    assert out.shape == (2, 3, 2, 3)
    assert np.array_equal(out, np.array(RESHAPE_EXPECTED, np.float32))


def test_reorder_sub_buffers_header_example():
    buf = np.array(RESHAPE_EXPECTED, np.float32).ravel()
    stride = 6
    out = buf.copy()
    for x in range(6):  # N*C strides, as in the header's loop
        out[x * stride:(x + 1) * stride] = reorder_sub_buffers(buf[x * stride:(x + 1) * stride], [1, 0], 2, 3)
    assert np.array_equal(out.reshape(2, 3, 2, 3), np.array(REORDER_EXPECTED, np.float32))


@pytest.mark.parametrize("shape,order", [((2, 3, 4), (2, 0, 1)), ((5, 7), (1, 0)), ((2, 2, 3, 1, 2), (4, 3, 2, 1, 0))])
def test_reshape_weights_is_numpy_transpose(shape, order):
    a = np.random.default_rng(0).standard_normal(int(np.prod(shape)))
    out = reshape_weights(a, shape, order)
    assert np.array_equal(out, np.transpose(a.reshape(shape), order))
    assert out.flags.c_contiguous


def test_transpose_sub_buffers_matches_definition():
    num, h, w = 3, 4, 5
    a = np.arange(num * h * w + 2, dtype=np.float64)  # two trailing elements stay untouched
    out = transpose_sub_buffers(a, num, h, w)
    for k in range(num):
        base = k * h * w
        for i in range(h):
            for j in range(w):
                assert out[base + j * h + i] == a[base + i * w + j]
    assert np.array_equal(out[-2:], a[-2:])
    assert not np.shares_memory(out, a)


def test_reorder_sub_buffers_scatter_and_gather():
    a = np.array([0, 0, 1, 1, 2, 2, 3, 3, 9], np.int32)
    # scatter: chunk k goes to position order[k]
    assert reorder_sub_buffers(a, [1, 2, 0, 3], 4, 2).tolist() == [2, 2, 0, 0, 1, 1, 3, 3, 9]
    # gather: output chunk k is input chunk order[k]
    assert reorder_sub_buffers(a, [1, 2, 0, 3], 4, 2, gather=True).tolist() == [1, 1, 2, 2, 0, 0, 3, 3, 9]


def test_tensorrt_legacy_sample_pipeline_gives_legacy_buffers():
    """TensorRT 4's sampleCharRNN converted TF BasicLSTMCell kernels (E == H) for the legacy
    RNN layer with reshapeWeights({L,2,4,H,H}, {0,1,4,2,3}), transposeSubBuffers(2L, H*H, 4)
    and reorderSubBuffers({1,2,0,3}) on the W and R halves of each layer. Run with our helpers it
    must give the f, i, c, o buffers that to_legacy_buffers builds from gate-order data; this
    also pins reorderSubBuffers' direction (scatter: with gather the result differs)."""
    L, H = 2, 4
    rng = np.random.default_rng(1)
    kernels = [rng.standard_normal((2 * H, 4 * H)).astype(np.float32) for _ in range(L)]
    p = reshape_weights(np.concatenate([k.ravel() for k in kernels]), (L, 2, 4, H, H), (0, 1, 4, 2, 3)).ravel()
    p = transpose_sub_buffers(p, L * 2, H * H, 4)

    def reorder(buf, gather):
        out = buf.copy()
        for z in range(2 * L):  # each layer's W half and R half
            s = slice(z * 4 * H * H, (z + 1) * 4 * H * H)
            out[s] = reorder_sub_buffers(buf[s], [1, 2, 0, 3], 4, H * H, gather=gather)
        return out

    stack = [(from_tf_lstm(k, np.zeros(4 * H, np.float32), forget_bias=0.0),) for k in kernels]
    expected, _ = to_legacy_buffers(stack)
    assert np.array_equal(reorder(p, gather=False), expected)
    assert not np.array_equal(reorder(p, gather=True), expected)


@pytest.mark.parametrize("call", [
    lambda: reshape_weights(np.zeros(10), (3, 3), (1, 0)),
    lambda: reshape_weights(np.zeros(9), (3, 3), (0, 0)),
    lambda: reorder_sub_buffers(np.zeros(7), [1, 0, 2, 3], 4, 2),
    lambda: reorder_sub_buffers(np.zeros(8), [1, 1, 2, 3], 4, 2),
    lambda: transpose_sub_buffers(np.zeros(11), 3, 2, 2),
])
def test_bad_sizes(call):
    with pytest.raises(ShapeError):
        call()
