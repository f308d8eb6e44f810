"""The input projection GEMM's forms (host side; the GPU tests run them on the device)."""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt.backends.cuda.projection import (XPROJ_DEFAULT, XPROJ_ENV, XPROJ_MIN_FLOP, XPROJ_MIN_KN, Projection,
                                            projection_mode, split_tf32)


def test_split_tf32_is_exact_with_a_tf32_high_part():
    rng = np.random.default_rng(0)
    m = (rng.standard_normal((64, 33)) * np.exp(rng.uniform(-20, 20, (64, 33)))).astype(np.float32)
    hi, lo = split_tf32(m)
    assert not np.any(hi.view(np.uint32) & np.uint32(0x1FFF))  # 10 mantissa bits left
    np.testing.assert_array_equal(hi.astype(np.float64) + lo.astype(np.float64), m.astype(np.float64))
    assert np.all(np.abs(lo) <= np.abs(m) * 2.0**-10)


def test_projection_mode_by_size_dtype_and_override(monkeypatch):
    monkeypatch.delenv(XPROJ_ENV, raising=False)
    rows = int(XPROJ_MIN_FLOP / (2 * 256 * 1024)) + 1  # enough FLOP with a small weight
    assert projection_mode("float32", rows, 256, 1024) == XPROJ_DEFAULT == "bf16x3"
    assert projection_mode("float32", rows - 2, 256, 1024) == "plain"  # launch-bound: plain SGEMM
    assert projection_mode("float32", 8, 1024, 4096) == "bf16x3"  # a large weight: a few rows suffice
    assert projection_mode("float32", 1, 1024, 4096) == "plain"  # one row: cuBLAS's bf16 path is slow
    assert 1024 * 4096 >= XPROJ_MIN_KN > 256 * 1024
    assert projection_mode("float16", rows, 1024, 4096) == "plain"  # tensor cores already
    # weights too large for bf16 parts (plan.BF16X3_MAX_ROW_NORM): three TF32 passes
    assert projection_mode("float32", 8, 1024, 4096, bf16_ok=False) == "tf32x3"
    assert projection_mode("float32", 1, 1024, 4096, bf16_ok=False) == "plain"
    monkeypatch.setenv(XPROJ_ENV, "tf32x3")
    assert projection_mode("float32", 1, 8, 8) == "tf32x3" and projection_mode("bfloat16", 1, 8, 8) == "plain"
    # tf32: an fp16/bf16 first layer whose caller reads fp32 projections; fp32 stacks keep their choice
    monkeypatch.setenv(XPROJ_ENV, "tf32")
    assert projection_mode("float16", 100, 512, 2048, half_tf32=True) == "tf32"
    assert projection_mode("bfloat16", 100, 512, 2048) == "plain"  # a caller reading its own type
    assert projection_mode("float32", rows, 256, 1024) == XPROJ_DEFAULT
    monkeypatch.setenv(XPROJ_ENV, "fast")
    with pytest.raises(ValueError, match="plain, tf32x3, bf16x3"):
        projection_mode("float32", 1, 8, 8)


def test_tf32x3_projection_lays_out_the_three_passes_in_one_gemm():
    """On the CPU the GEMM is plain fp32, so hi*hi + hi*lo + lo*hi must reproduce x W^T + b
    up to the dropped lo*lo term: this checks the split, the tripled K and the bias."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    W = rng.uniform(-1, 1, (24, 40)).astype(np.float32)
    b = rng.uniform(-1, 1, 24).astype(np.float32)
    x = rng.uniform(-3, 3, (10, 40)).astype(np.float32)
    proj = Projection(W, b, torch.float32, 16, "cpu", "tf32x3")
    out = torch.empty(7, 24)
    proj(torch.from_numpy(x[:7]), out)
    ref = x[:7].astype(np.float64) @ W.T.astype(np.float64) + b
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=2e-5)
    plain = Projection(W, b, torch.float32, 16, "cpu", "plain")
    out2 = torch.empty(7, 24)
    plain(torch.from_numpy(x[:7]), out2)
    np.testing.assert_allclose(out.numpy(), out2.numpy(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="fp32 stacks"):
        Projection(W, b, torch.float16, 16, "cpu", "tf32x3")
    with pytest.raises(ValueError, match="unknown projection mode"):
        Projection(W, b, torch.float32, 16, "cpu", "fp64")


def test_bf16x3_operands_carry_the_split_and_the_bias():
    """The bf16x3 GEMM (bf16 in, fp32 out) runs on CUDA only; its operands are checked
    here by multiplying them in fp32: the result must be x W^T + b to the split's accuracy."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    W = rng.uniform(-0.1, 0.1, (24, 40)).astype(np.float32)
    b = rng.uniform(-1, 1, 24).astype(np.float32)
    x = rng.uniform(-1, 1, (7, 40)).astype(np.float32)
    proj = Projection(W, b, torch.float32, 16, "cpu", "bf16x3")
    x3 = proj.stage(torch.from_numpy(x))
    assert x3.shape == (7, 3 * 40 + 8) and x3.dtype == torch.bfloat16
    got = (x3.double() @ proj.w3.double()).numpy()
    ref = x.astype(np.float64) @ W.T.astype(np.float64) + b
    err = np.abs(got - ref).max()
    assert err < 1e-4 * np.abs(ref).max()  # ~2^-16 relative per product
    # one bf16 pass (operands rounded to bf16) is far less accurate
    one = torch.from_numpy(x).bfloat16().double().numpy() @ torch.from_numpy(W.T.copy()).bfloat16().double().numpy() + b
    assert np.abs(one - ref).max() > 10 * err


@pytest.mark.parametrize("mode", ["bf16x3", "tf32x3"])
def test_split_operands_from_a_transposed_input(mode):
    """A batch-major input seen time-major ([T, B, K] view of [B, T, K]) stages the same
    operand rows, in (t, b) order, as the time-major copy: the input needs no copy of its own."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    W = rng.uniform(-0.1, 0.1, (24, 40)).astype(np.float32)
    b = rng.uniform(-1, 1, 24).astype(np.float32)
    batch_major = torch.from_numpy(rng.uniform(-1, 1, (3, 5, 40)).astype(np.float32))  # [B, T, K]
    view = batch_major.transpose(0, 1)  # [T, B, K], not contiguous
    assert not view.is_contiguous()
    proj = Projection(W, b, torch.float32, 16, "cpu", mode)
    assert proj.takes_any_layout(view)
    got = proj.stage(view).clone()
    want = proj.stage(view.contiguous().reshape(15, 40))
    assert got.shape == want.shape and torch.equal(got, want)
    assert not Projection(W, b, torch.float32, 16, "cpu", "plain").takes_any_layout(view)


def test_tf32_projection_of_a_half_stack_reads_fp32_x_and_writes_fp32():
    """Mode "tf32" (fp16/bf16 stacks): fp32 x as given, any other type converted, fp32
    projections out with the bias (on the CPU the GEMM is plain fp32)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    W = rng.uniform(-1, 1, (24, 40)).astype(np.float32)
    b = rng.uniform(-1, 1, 24).astype(np.float32)
    x = rng.uniform(-3, 3, (3, 2, 40)).astype(np.float32)
    proj = Projection(W, b, torch.float16, 16, "cpu", "tf32")
    assert proj.out_dtype == torch.float32 and not proj.takes_any_layout(torch.from_numpy(x))
    ref = x.reshape(6, 40).astype(np.float64) @ W.T.astype(np.float64) + b
    for xin in (torch.from_numpy(x), torch.from_numpy(x).to(torch.float16)):
        out = torch.empty(6, 24)
        proj(xin, out)
        np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=2e-5 if xin.dtype == torch.float32 else 2e-2)
    with pytest.raises(ValueError, match="fp16/bf16 stacks"):
        Projection(W, b, torch.float32, 16, "cpu", "tf32")
