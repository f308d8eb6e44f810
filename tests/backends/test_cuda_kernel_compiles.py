"""Every kernel configuration class the planner produces compiles (NVRTC, no GPU needed).

The GPU tests (test_cuda_persistent.py) run the kernel; these run in CPU CI so a change
that breaks one of the compile-time variants (step loop, weight fragments in registers,
in-kernel input products, fp32/fp16/bf16, each cell) fails before anyone has a GPU.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import replace

import pytest

from nvrtc import Nvrtc, find_nvrtc

from tf2rt.backends.cuda.persistent import NDESC, gate_defines, kernel_source
from tf2rt.backends.cuda.plan import DeviceLimits, RnnProblem, make_plan

H100 = DeviceLimits()


@pytest.fixture(scope="module")
def nvrtc():
    path = find_nvrtc()
    if path is None:
        if platform.system() == "Linux" and platform.machine() == "x86_64":
            pytest.fail("NVRTC is missing: the test extras install nvidia-cuda-nvrtc (pip install -e '.[test]')")
        pytest.skip("the nvidia-cuda-nvrtc wheel exists for Linux x86_64 only")
    return Nvrtc(path)


def _problems():
    return {
        "lstm-h512-b1-wave-fp16": RnnProblem("lstm", 512, 512, 1, 100, layers=2, dtype="float16"),
        "lstm-h512-b1-t1-fp16": RnnProblem("lstm", 512, 128, 1, 1, layers=2, dtype="float16"),
        "lstm-h96-b3-bidir-bf16-peep-clip": RnnProblem("lstm", 96, 40, 3, 20, directions=2, dtype="bfloat16",
                                                       peepholes=True, clip=3.0),
        "gru-h256-b8-wave-fp16": RnnProblem("gru", 256, 256, 8, 50, layers=3, dtype="float16"),
        "gru-reset-before-fp32": RnnProblem("gru", 128, 64, 2, 30, dtype="float32", linear_before_reset=False),
        "lstm-h128-b2-wave-fp32": RnnProblem("lstm", 128, 64, 2, 30, layers=2, dtype="float32"),
        "gru-h256-b3-t2-fp32": RnnProblem("gru", 256, 100, 3, 2, layers=3, dtype="float32"),
        "lstm-h128-b4-wave-fp32": RnnProblem("lstm", 128, 64, 4, 30, layers=2, dtype="float32"),
        "lstm-h512-b8-wave-fp32": RnnProblem("lstm", 512, 512, 8, 100, layers=2, dtype="float32"),
        "gru-h1024-b8-fp32": RnnProblem("gru", 1024, 1024, 8, 50, layers=2, dtype="float32"),
        "gru-h256-b4-t2-fp32": RnnProblem("gru", 256, 100, 4, 2, layers=3, dtype="float32"),
        "gru-h96-b8-bidir-fp32": RnnProblem("gru", 96, 96, 8, 20, layers=2, directions=2, dtype="float32"),
        "lstm-h256-b16-wave-fp16": RnnProblem("lstm", 256, 256, 16, 100, layers=2, dtype="float16"),
        "rnn-relu-h256-b64-fp16": RnnProblem("rnn", 256, 256, 64, 100, dtype="float16", rnn_activation="relu"),
        "lstm-h512-b64-wave-fp16": RnnProblem("lstm", 512, 512, 64, 100, layers=2, dtype="float16"),
        "gru-h96-b20-bidir-bf16": RnnProblem("gru", 96, 40, 20, 3, directions=2, dtype="bfloat16"),
        "rnn-tanh-h1024-b1-fp16": RnnProblem("rnn", 1024, 1024, 1, 100, dtype="float16"),
        "lstm-h1024-b1-fp16": RnnProblem("lstm", 1024, 1024, 1, 100, dtype="float16"),
        "lstm-h512-b64-fp32": RnnProblem("lstm", 512, 512, 64, 100, layers=2, dtype="float32"),
        "gru-h1024-b16-fp32": RnnProblem("gru", 1024, 1024, 16, 100, layers=2, dtype="float32"),
        "lstm-h1024-b32-fp32": RnnProblem("lstm", 1024, 1024, 32, 100, layers=2, dtype="float32"),
        "gru-h1024-b40-fp32": RnnProblem("gru", 1024, 1024, 40, 100, layers=2, dtype="float32"),
        "lstm-h1024-b64-t1-fp32": RnnProblem("lstm", 1024, 1024, 64, 1, layers=2, dtype="float32"),
        "lstm-h256-b64-wave-fp32": RnnProblem("lstm", 256, 256, 64, 100, layers=2, dtype="float32"),
        "gru-h512-b16-wave-fp32": RnnProblem("gru", 512, 512, 16, 100, layers=2, dtype="float32"),
        "gru-h256-b64-t1-fp32": RnnProblem("gru", 256, 256, 64, 1, layers=2, dtype="float32"),
        "lstm-h1024-b64-fp16": RnnProblem("lstm", 1024, 1024, 64, 100, layers=2, dtype="float16"),
    }


def _configs():
    problems = _problems()
    out = {}
    # fp32 large-batch builds on three TF32 passes instead of the default three bf16 passes
    # (TF2RT_CUDA_BF16X3=0): fragments in registers, in shared memory, split with and
    # without a ring
    os.environ["TF2RT_CUDA_BF16X3"] = "0"
    try:
        for name in ("lstm-h512-b64-fp32", "gru-h1024-b16-fp32", "lstm-h1024-b32-fp32", "gru-h1024-b40-fp32",
                     "gru-h1024-b8-fp32"):
            out[name + "-tf32"] = make_plan(problems[name], H100, prefer="persistent").kernel
    finally:
        del os.environ["TF2RT_CUDA_BF16X3"]
    for name, prob in problems.items():
        k = make_plan(prob, H100, prefer="persistent").kernel
        assert k is not None, name
        out[name] = k
        if k.wreg:
            out[name + "-smem"] = replace(k, wreg=False)
        if k.split_x:
            out[name + "-nosplit"] = replace(k, split_x=False)
        if k.two_barrier or k.large_batch:
            out[name + "-original"] = replace(k, two_barrier=False, large_batch=False, wreg=False, split_x=False, tf32=False, packf=False,
                                        wpart=0, ring_slots=0, bf16x3=False, bulk=0, bch=min(k.batch, 8))
        if k.tf32 and not k.large_batch:  # fp32 products on CUDA cores instead (TF2RT_CUDA_TF32X3=0)
            out[name + "-cudacores"] = replace(k, tf32=False, packf=False, wreg=False)
        if k.ring_slots and k.group_tiles == 2:  # a ring of one-tile groups instead
            out[name + "-ring3x1"] = replace(k, group_tiles=1, ring_slots=3)
        if k.large_batch and k.wreg and k.rows_padded >= 32 and replace(k, mt_share=True).smem_bytes <= 226 * 1024:
            out[name + "-share"] = replace(k, mt_share=True)  # every warp all row tiles of its K slice
        if k.bulk:  # rows by 16-byte cp.async, and by bulk copies without clusters
            out[name + "-cpasync"] = replace(k, bulk=0)
            out[name + "-bulk1"] = replace(k, bulk=1)
        if k.two_barrier and k.fuse_input and prob.directions == 1:  # streaming build (resident.py)
            out[name + "-resident"] = replace(k, resident=True, split_x=False)
    return out


CONFIGS = _configs()
#: The builds the planner itself produces (no environment switches, no derived variants).
PLANNED = sorted(_problems())


def test_the_configurations_cover_every_kernel_variant():
    ks = CONFIGS.values()
    assert {k.cell_code for k in ks} == {0, 1, 2, 3}
    assert {k.wtype for k in ks} == {0, 1, 2}
    assert any(k.wreg for k in ks) and any(k.two_barrier and not k.wreg for k in ks) and any(not k.two_barrier for k in ks)
    assert any(k.fuse_input for k in ks) and any(k.fused and not k.fuse_input for k in ks)
    assert any(k.split_x and k.wreg for k in ks) and any(k.split_x and not k.mma for k in ks)
    assert any(k.resident and k.wreg for k in ks) and any(k.resident and k.tf32 for k in ks)
    assert any(k.tf32 and k.wreg for k in ks) and any(k.tf32 and not k.wreg for k in ks)
    assert any(k.packf and k.split_x for k in ks) and any(k.packf and k.groups == 1 for k in ks)
    assert any(k.large_batch and k.tf32 and k.wreg for k in ks) and any(k.large_batch and k.tf32 and not k.wreg for k in ks)
    assert any(k.large_batch and k.wtype != 0 and not k.wreg for k in ks)
    assert any(k.large_batch and k.fused and not k.fuse_input for k in ks) and any(k.large_batch and k.fuse_input for k in ks)
    bf = [k for k in ks if k.bf16x3]
    assert any(k.wreg for k in bf) and any(k.wpart and k.ring_slots for k in bf) and any(k.wpart and not k.ring_slots for k in bf)
    assert any(not (k.wreg or k.wpart) for k in bf)
    assert any(k.two_barrier and k.packf for k in bf) and any(k.two_barrier and not k.packf for k in bf)
    # wavefronts (deeper layers' input products) and in-kernel first-layer projections
    assert any(k.fused and k.wreg for k in bf) and any(k.fused and not k.wreg for k in bf)
    assert any(k.fuse_input for k in bf)
    assert any(k.wpart and not k.ring_slots for k in ks) and {(k.group_tiles, k.ring_slots) for k in ks if k.wpart} >= {(2, 2), (1, 3)}
    assert {k.bulk for k in ks if k.wtype != 0} >= {0, 1, 2} and any(k.bulk > 1 and k.bf16x3 for k in ks)
    assert any(k.mt_share and k.wtype != 0 for k in ks)


def _spill_stores(log: str) -> list[int]:
    """The spill-store byte counts ptxas reports (-v) for each function of a build."""
    return [int(n) for n in re.findall(r"(\d+) bytes spill stores", log)]


#: fp16/bf16 builds that read fp32 input projections (TF2RT_CUDA_XPROJ=tf32, PTYPE=0): the
#: ones a GEMM feeds (not every layer projected inside), large-batch and two-barrier steps.
PTYPE0 = sorted(n for n in PLANNED if CONFIGS[n].wtype != 0 and not CONFIGS[n].fuse_input)


def _compile(nvrtc, cfg, extra=None, arch="compute_90"):
    defines = {**cfg.defines(), **gate_defines(), "NDESC": NDESC, **(extra or {})}
    options = ["--std=c++17", f"-arch={arch}"] + [f"-D{k}={v}" for k, v in defines.items()]
    if arch.startswith("sm_"):
        options += ["-Xptxas", "-v"]
        return nvrtc.compile_log(kernel_source(), options)
    return nvrtc.compile(kernel_source(), options)


@pytest.mark.parametrize("name", PTYPE0)
def test_builds_reading_fp32_projections_compile_without_spills(nvrtc, name):
    """PTYPE=0 (the HALF_TF32 projection's fp32 output): the build compiles for sm_90 without
    spills."""
    ok, log = _compile(nvrtc, CONFIGS[name], {"PTYPE": 0}, arch="sm_90")
    assert ok, log
    spills = _spill_stores(log)
    assert spills and not any(spills), f"{name}\n{log}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_kernel_compiles(nvrtc, name):
    cfg = CONFIGS[name]
    ok, out = _compile(nvrtc, cfg)
    assert ok, f"{name}: {cfg}\n{out}"
    assert ".entry persistent_rnn" in out
    # a dependent launch waits once, after its weight copies are issued, before reading the epoch
    body = out.split(".entry persistent_rnn")[1]
    assert body.count("griddepcontrol.wait") == 1, name
    if cfg.wreg and not cfg.large_batch:
        # The fragments come from registers: the step loop no longer issues the 16-byte
        # shared-memory weight loads the shared-memory build has.
        ok2, smem = _compile(nvrtc, replace(cfg, wreg=False))
        assert ok2
        assert out.count("ld.shared.v4") < smem.count("ld.shared.v4")
    if cfg.tf32:  # three TF32 passes per K step, no CUDA-core dot products
        assert "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in out
    if cfg.bulk:  # the rows come by bulk copies completing on mbarriers; multicast builds run in clusters
        assert "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes" in out
        assert ("multicast::cluster" in out) == (cfg.bulk > 1)
        assert (f".reqnctapercluster {cfg.bulk}" in out) == (cfg.bulk > 1)
        assert "cp.async.cg" not in out.split("mbarrier.init")[1]  # no 16-byte copies after the set-up
    if cfg.packf:  # packed fp32 words: the publishing thread takes its neighbour's h by shuffle
        ok2, unpacked = _compile(nvrtc, replace(cfg, packf=False))
        assert ok2 and out.count("shfl.sync") > unpacked.count("shfl.sync")


@pytest.mark.parametrize("name", PLANNED)
def test_planned_builds_do_not_spill_registers(nvrtc, name):
    """ptxas (through NVRTC, for sm_90) reports no spills for the builds the planner picks:
    a spill in the step loop costs more than any register it saves (one crept in once with
    an unrelated change and made an fp16 batch-64 stack 15% slower)."""
    cfg = CONFIGS[name]
    ok, log = _compile(nvrtc, cfg, arch="sm_90")
    assert ok, log
    spills = _spill_stores(log)
    assert spills and not any(spills), f"{name}: {cfg}\n{log}"


def _bench_module(name: str):
    """benchmarks/<name>.py as a module (the benchmarks folder is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _probes():
    return _bench_module("cuda_kernel_probes")


def test_shipped_kernel_has_no_probe_switches():
    """Timing probes live in the benchmark (source patches), not in the shipped kernel."""
    assert "PROBE_" not in kernel_source()


@pytest.mark.parametrize("name", ["lstm-h512-b1-wave-fp16", "lstm-h512-b64-wave-fp16"])
def test_benchmark_probe_patches_apply_and_compile(nvrtc, name):
    """bench_cuda_rnn.py --probe patches the kernel source: every edit still finds its text
    (exactly once) and the patched builds compile."""
    probes = _probes()
    cfg = CONFIGS[name]
    names = tuple(probes.PROBES) if cfg.large_batch else ("PROBE_NO_DOT", "PROBE_NO_SPIN")
    source = probes.probe_source(kernel_source(), names)
    assert source != kernel_source()
    defines = {**cfg.defines(), **gate_defines(), "NDESC": NDESC}
    ok, out = nvrtc.compile(source, ["--std=c++17", "-arch=compute_90"] + [f"-D{k}={v}" for k, v in defines.items()])
    assert ok, out
    with pytest.raises(KeyError):
        probes.probe_source(kernel_source(), ("PROBE_UNKNOWN",))


@pytest.mark.parametrize("cluster", [2, 8, 16])
def test_cluster_exchange_probe_compiles_for_sm90(nvrtc, cluster):
    """benchmarks/cuda_cluster_probe.py (DSMEM stores and cluster barriers, timed on a GPU
    only) compiles for sm_90 through ptxas: its inline PTX is valid for that target."""
    mod = _bench_module("cuda_cluster_probe")
    ok, log = nvrtc.compile_log(mod.CLUSTER_SRC, list(mod.compile_options(cluster)) + ["-arch=sm_90"])
    assert ok, log


@pytest.mark.parametrize("wg,ch", [(1, 1), (2, 1), (1, 4), (2, 2)])
def test_wgmma_probe_compiles_for_sm90a(nvrtc, wg, ch):
    """benchmarks/cuda_wgmma_probe.py (mma.sync against wgmma products, timed on a GPU only)
    compiles for sm_90a through ptxas without spills: its inline PTX is valid there."""
    mod = _bench_module("cuda_wgmma_probe")
    ok, log = nvrtc.compile_log(mod.SRC, ["--std=c++17", f"-DWG={wg}", f"-DCH={ch}", "-DWGMMA=1", "-arch=sm_90a",
                                          "-Xptxas", "-v"])
    assert ok, log
    assert "wgmma.mma_async" in nvrtc.compile(mod.SRC, ["--std=c++17", f"-DWG={wg}", "-DWGMMA=1",
                                                        "-arch=compute_90a"])[1]
    for red in (0, 1):  # the mma.sync forms alone build for plain sm_90
        ok, plain = nvrtc.compile_log(mod.SRC, ["--std=c++17", f"-DRED={red}", "-DWGMMA=0", "-arch=sm_90"])
        assert ok, plain
    spills = _spill_stores(log)
    assert len(spills) == 3 and not any(spills), log
    assert "serialized" not in log, log  # ptxas serializes wgmma it cannot pipeline


@pytest.mark.parametrize("mask", [0, 1, 2, 4, 7])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_one_launch_layer_l2_prefetches_compile_for_sm90(nvrtc, dtype, mask):
    """The one-launch layer (kernels/single_step.cu, step_gemv) with each kind of L2 prefetch
    (GV_L2PF) compiles for sm_90 through ptxas without spills; the PTX holds the prefetches
    the mask asks for and no others."""
    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.single_step import step_defines

    problem = RnnProblem("lstm", 1024, 1024, 1, 1, layers=2, dtype=dtype)
    defines = {**step_defines(problem, CudaOptions(gemv_l2pf=str(mask))), "XTYPE": 0, "OTYPE": 0}
    assert defines["GEMV"] == 1 and defines["GV_L2PF"] == mask
    options = ["--std=c++17", "-arch=sm_90", "-Xptxas", "-v"] + [f"-D{k}={v}" for k, v in defines.items()]
    ok, log = nvrtc.compile_log(kernel_source("single_step.cu"), options)
    assert ok, log
    spills = _spill_stores(log)
    assert spills and not any(spills), log
    ok, ptx = nvrtc.compile(kernel_source("single_step.cu"), ["--std=c++17", "-arch=compute_90"]
                            + [f"-D{k}={v}" for k, v in defines.items()])
    assert ok, ptx
    gemv = ptx.split(".entry step_gemv")[1]
    assert ("prefetch.global.L2::evict_last" in gemv) == bool(mask & 3)
    assert ("ld.global.cs" in gemv) == bool(mask & 4)


@pytest.mark.parametrize("mask", [0, 5])
@pytest.mark.parametrize("dtype,hidden", [("float32", 1024), ("float16", 1024), ("float32", 512)])
def test_one_launch_layer_taking_rows_from_their_tail_compiles_for_sm90(nvrtc, dtype, hidden, mask):
    """TF2RT_CUDA_GEMV_ALT=1 (the held loads from each row's tail every other call) compiles
    for sm_90 through ptxas without spills, with and without the first call's L2 prefetches;
    the call count is added once a block."""
    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.single_step import step_defines

    problem = RnnProblem("lstm", hidden, hidden, 1, 1, layers=2, dtype=dtype)
    defines = {**step_defines(problem, CudaOptions(gemv_alt=True, gemv_l2pf=str(mask))), "XTYPE": 0, "OTYPE": 0}
    assert defines["GV_ALT"] == 1
    options = [f"-D{k}={v}" for k, v in defines.items()]
    ok, log = nvrtc.compile_log(kernel_source("single_step.cu"), ["--std=c++17", "-arch=sm_90", "-Xptxas", "-v"] + options)
    assert ok, log
    spills = _spill_stores(log)
    assert spills and not any(spills), log
    ok, ptx = nvrtc.compile(kernel_source("single_step.cu"), ["--std=c++17", "-arch=compute_90"] + options)
    assert ok, ptx
    assert ptx.split(".entry step_gemv(")[1].split(".entry")[0].count("atom.global.add.u32") == 1


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_step_timeline_patch_applies_and_compiles(nvrtc, dtype):
    """benchmarks/cuda_step_timeline.py patches the one-launch layer with %globaltimer stamps:
    every edit still finds its text exactly once, the patched build compiles for sm_90, and a
    stale edit is an error rather than a timeline of nothing."""
    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.single_step import step_defines

    mod = _bench_module("cuda_step_timeline")
    source = mod.timeline_source(kernel_source("single_step.cu"))
    assert source.count("tl_stamp(tl_layer,") == 4
    problem = RnnProblem("lstm", 1024, 1024, 1, 1, layers=2, dtype=dtype)
    defines = {**step_defines(problem, CudaOptions(gemv_l2pf="5")), "XTYPE": 0, "OTYPE": 0}
    ok, ptx = nvrtc.compile(source, ["--std=c++17", "-arch=sm_90"] + [f"-D{k}={v}" for k, v in defines.items()])
    assert ok, ptx
    with pytest.raises(KeyError):
        mod.timeline_source(kernel_source("single_step.cu").replace("grid_dep_wait();  // the layer below", "x"))


@pytest.mark.parametrize("load", ["__ldg", "__ldcs"])
def test_l2_order_probe_compiles_for_sm90(nvrtc, load):
    """benchmarks/cuda_l2_order_probe.py's read (timed on a GPU only) compiles for sm_90."""
    mod = _bench_module("cuda_l2_order_probe")
    ok, log = nvrtc.compile_log(mod.READ_SRC, ["-DUNROLL=16", f"-DLOAD={load}", "-arch=sm_90"])
    assert ok, log
