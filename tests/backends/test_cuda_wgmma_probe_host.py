"""The wgmma probe's kernels (benchmarks/cuda_wgmma_probe.py) on the host emulation: the same
source, its ldmatrix, mma.sync and wgmma statements replaced by the emulator's
(tests/helpers/cuda_host.h), against numpy's product.

An H100 ran these kernels and their results matched torch
(benchmarks/results/cuda_wgmma_probe_h100.md): the emulator computing the same products from
the same descriptors and register layouts is what makes it fit to test kernels built on
wgmma before a GPU runs them."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from helpers.cuda_host import compiler, host_kernels, host_shared

PROBE = Path(__file__).resolve().parents[2] / "benchmarks" / "cuda_wgmma_probe.py"

# (pattern, replacement): each must match at least once; no inline PTX may be left.
EDITS = (
    (r'asm volatile\("mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.f16\.f16\.f32 [^;]*;"\s*:[^;]*\);',
     "emu_mma(EMU_MMA_F16, c[0], c[1], c[2], c[3], a[0], a[1], a[2], a[3], b0, b1);"),
    (r'asm volatile\("ldmatrix\.sync\.aligned\.m8n8\.x4\.shared\.b16 [^;]*;"\s*: "=r"\((\w+)\[0\]\), "=r"\(\1\[1\]\), '
     r'"=r"\(\1\[2\]\), "=r"\(\1\[3\]\) : "r"\((\w+)\)\);',
     r"emu_ldmatrix_x4(\1[0], \1[1], \1[2], \1[3], \2);"),
    (r'asm volatile\("\{\\n\.reg \.pred p;\\nsetp\.ne\.b32 p, %18, 0;\\n"\s*"wgmma[^;]*;\\n\}"[^;]*"r"\(acc\)\);',
     "emu_wgmma_ss(32, d, da, db, acc);"),
    (r'asm volatile\("\{\\n\.reg \.pred p;\\nsetp\.ne\.b32 p, %21, 0;\\n"\s*"wgmma[^;]*;\\n\}"[^;]*"r"\(s\)\);',
     "emu_wgmma_rs(32, d, a, db, s);"),
    (r'asm volatile\("(?:fence\.proxy\.async\.shared::cta|wgmma\.fence\.sync\.aligned|wgmma\.commit_group\.sync\.aligned'
     r'|wgmma\.wait_group\.sync\.aligned 0);" ::: "memory"\);', ";"),
)


def _probe():
    spec = importlib.util.spec_from_file_location("cuda_wgmma_probe", PROBE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def host_probe_source(src: str) -> str:
    for pattern, host in EDITS:
        src, n = re.subn(pattern, host, src)
        if n == 0:
            raise AssertionError(f"the wgmma probe changed: {pattern[:60]!r} matches nothing")
    if "asm" in re.sub(r"//.*", "", src):
        raise AssertionError("the wgmma probe: inline PTX left that the host emulation does not replace")
    return host_shared(src)


@pytest.mark.parametrize("form", ["mma", "mma_product", "wgmma1", "wgmma1x4", "wgmma2", "wgmma2x2", "wgmma_ra"])
def test_wgmma_probe_forms_match_numpy_on_the_host(form):
    if compiler() is None:
        pytest.fail("the host emulation of the kernels needs a C++ compiler (g++)")
    probe = _probe()
    _, defines, kernel, threads, smem = probe.FORMS[form]
    wg = kernel != "prod_mma"
    defines = {"WGMMA": int(wg), **defines}
    k = host_kernels(f"wgmma-probe-{form}.cu", defines, source=host_probe_source(probe.SRC))[kernel]
    rng = np.random.default_rng(11)
    M, N, K = probe.M, probe.N, probe.K
    h = (rng.random((M, K)) - 0.5).astype(np.float16)
    w = (rng.random((N, K)) - 0.5).astype(np.float16)
    want = w.astype(np.float32) @ h.astype(np.float32).T  # [N][M]
    out = np.zeros((1, N, M), np.float32)
    raw = np.zeros((128, 16), np.float32)
    args = (h.ctypes.data, w.ctypes.data, out.ctypes.data)
    args += (raw.ctypes.data, np.int32(2), np.int32(0)) if wg else (np.int32(2),)
    k((1,), (threads,), args, shared_mem=smem)
    assert np.abs(out[0] - want).max() < 2e-3, np.abs(out[0] - want).max()
    if wg:  # warpgroup 0's raw accumulators: register 4j + 2i + e = (batch 16w + l/4 + 8i, row 8j + 2(l%4) + e)
        t = np.arange(128)[:, None]
        reg = np.arange(16)[None, :]
        m = 16 * (t // 32) + (t % 32) // 4 + 8 * ((reg // 2) % 2)
        n = 8 * (reg // 4) + 2 * (t % 4) + reg % 2
        part = want if defines.get("WG", 1) == 1 else None
        if part is not None:
            assert np.abs(raw - want[n, m]).max() < 2e-3
        else:  # two warpgroups: warpgroup 0 summed the first half of K
            half = w[:, :K // 2].astype(np.float32) @ h[:, :K // 2].astype(np.float32).T
            assert np.abs(raw - half[n, m]).max() < 2e-3


def test_a_changed_probe_fails_its_host_edits():
    """An edit that no longer matches is an error, not a kernel run with PTX left in it."""
    src = _probe().SRC.replace("ldmatrix.sync.aligned.m8n8.x4", "ldmatrix.sync.aligned.m8n8.x2")
    with pytest.raises(AssertionError, match="changed"):
        host_probe_source(src)
