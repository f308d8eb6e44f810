"""Run the cuda backend's kernels on the CPU: the kernel file's own source, compiled by the
host C++ compiler against an emulation of the CUDA built-ins (cuda_host.h: a block's threads
are fibers that meet at real barriers, so barriers and warp shuffles behave as on a GPU;
blocks run in turn, or all at once for kernels whose blocks wait for each other).

    kernels = host_kernels("single_step.cu", defines)   # {name: HostKernel}
    kernels["step_gemv"](grid, block, args, shared_mem=n) # the CuPy RawKernel call

Arguments are what the stacks pass CuPy: numpy scalars, and device pointers, which on a CPU
torch device are host addresses. Inline PTX is replaced: types.cuh and flags.cuh by host
headers, the persistent kernel's statements one by one (PERSISTENT_EDITS; mma.sync becomes
the header's emu_mma). What this cannot check: timing, and memory ordering between blocks
(a concurrent launch interleaves them only where a thread polls in emu_spin).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

HEADER = Path(__file__).with_name("cuda_host.h")
_BUILD = Path(tempfile.gettempdir()) / "tf2rt-cuda-host"

# types.cuh's conversions are inline PTX; these are the same roundings in C++.
HOST_TYPES = r"""
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
inline float f16_to_f32(u16 x) { _Float16 h; std::memcpy(&h, &x, 2); return (float)h; }
inline u16 f32_to_f16(float f) { _Float16 h = (_Float16)f; u16 x; std::memcpy(&x, &h, 2); return x; }
inline float bf16_to_f32(u16 x) { return __uint_as_float(((u32)x) << 16); }
inline u16 f32_to_bf16(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    return (u16)(u >> 16);
}
"""

# flags.cuh's acquire loads, fenced adds, tagged words, and the poll between two loads.
HOST_FLAGS = r"""
inline u32 flag_load(const u32* p) { return std::atomic_ref<u32>(*const_cast<u32*>(p)).load(std::memory_order_acquire); }
inline void flag_add(u32* p, u32 v) { std::atomic_ref<u32>(*p).fetch_add(v, std::memory_order_acq_rel); }
inline u64 count_load(const u64* p) { return std::atomic_ref<u64>(*const_cast<u64*>(p)).load(std::memory_order_acquire); }
inline u64 count_add(u64* p, u64 v) { return std::atomic_ref<u64>(*p).fetch_add(v, std::memory_order_acq_rel); }
inline u64 word_load(const u64* p) { return std::atomic_ref<u64>(*const_cast<u64*>(p)).load(std::memory_order_relaxed); }
inline void word_store(u64* p, u64 v) { std::atomic_ref<u64>(*p).store(v, std::memory_order_relaxed); }
inline unsigned long long clock_ns() { return emu_clock_ns(); }
inline void spin_pause() { emu_spin(); }
"""

# A kernel definition after preprocessing (__global__ and __launch_bounds__ expand to nothing).
_KERNEL = re.compile(r'extern "C"\s+void\s+(\w+)\s*\(([^)]*)\)\s*\{')


def compiler() -> str | None:
    return shutil.which("g++") or shutil.which("c++")


def use_host_kernels(monkeypatch: Any, *patches: tuple[Any, str, Any]) -> Any:
    """Point the stacks' kernel builders at host builds for a test: each patch is (module,
    attribute, value), the host builder or a size it needs. Fails (it does not skip)
    without a C++ compiler; returns torch."""
    import pytest

    if compiler() is None:
        pytest.fail("the host emulation of the kernels needs a C++ compiler (g++)")
    torch = pytest.importorskip("torch")
    for module, name, value in patches:
        monkeypatch.setattr(module, name, value)
    return torch


def _ctype(param: str) -> Any:
    if "*" in param:
        return ctypes.c_void_p
    words = param.replace("const", "").split()[:-1]
    kind = " ".join(w for w in words if w != "__restrict__")
    table = {"int": ctypes.c_int, "long long": ctypes.c_longlong, "float": ctypes.c_float,
             "unsigned": ctypes.c_uint, "unsigned int": ctypes.c_uint}
    if kind not in table:
        raise TypeError(f"host emulation: no ctypes type for kernel parameter {param!r}")
    return table[kind]


class HostKernel:
    """A kernel of a host build, called as CuPy calls a RawKernel (1-D grids)."""

    def __init__(self, lib: ctypes.CDLL, name: str, params: list[str]) -> None:
        self.name = name
        self.fn = getattr(lib, f"launch_{name}")
        self.types = [_ctype(p) for p in params]
        self.fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_size_t] + self.types
        self.fn.restype = ctypes.c_char_p

    def __call__(self, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0) -> None:
        if len(args) != len(self.types):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.types)} parameters")
        if any(d != 1 for d in tuple(grid)[1:] + tuple(block)[1:]):
            raise ValueError("host emulation runs 1-D grids and blocks only")
        values = [t(int(a) if t is ctypes.c_void_p else a.item() if hasattr(a, "item") else a)
                  for t, a in zip(self.types, args)]
        err = self.fn(int(grid[0]), int(block[0]), int(shared_mem), *values)
        if err is not None:
            raise RuntimeError(f"{self.name} (host emulation): {err.decode()}")


# The persistent kernel's inline PTX, as host code: each edit's text must occur exactly once
# (a changed kernel fails loudly instead of running unemulated PTX). Loads and stores of the
# exchange are atomics; a cp.async copies at once (its waits are then no-ops); polling loops
# yield to the other threads of the grid.
PERSISTENT_EDITS = (
    # programmatic dependent launches (pdl.cuh): a host launch has nothing ahead to wait for
    ('asm volatile("griddepcontrol.wait;" ::: "memory");', ";"),
    ('asm volatile("griddepcontrol.launch_dependents;" ::: "memory");', ";"),
    ('asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");',
     "v = std::atomic_ref<u64>(*const_cast<u64*>(p)).load(std::memory_order_relaxed);"),
    ('asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");',
     "std::atomic_ref<u64>(*p).store(v, std::memory_order_relaxed);"),
    ('asm volatile("ld.relaxed.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");',
     "v = std::atomic_ref<u64>(*const_cast<u64*>(p)).load(std::memory_order_relaxed);"),
    ('asm volatile("st.relaxed.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");',
     "std::atomic_ref<u64>(*p).store(v, std::memory_order_relaxed);"),
    ('asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));', "t = emu_clock_ns();"),
    ("#define SPIN_WHILE(cond) while (cond) {}", "#define SPIN_WHILE(cond) while (cond) { emu_spin(); }"),
    ('asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(f) : "memory");',
     "v = std::atomic_ref<u32>(*const_cast<u32*>(f)).load(std::memory_order_acquire); if (v != epoch) emu_spin();"),
    ('asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(f), "r"(epoch) : "memory");',
     "std::atomic_ref<u32>(*f).store(epoch, std::memory_order_release);"),
    ("""    unsigned sa;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(sa) : "l"(sdst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(gsrc) : "memory");""",
     "    std::memcpy(sdst, gsrc, 16);"),
    ('asm volatile("cp.async.wait_all;" ::: "memory");', ";"),
    ('asm volatile("cp.async.commit_group;" ::: "memory");', ";"),
    # BULK builds: mbarriers, bulk copies (multicast: into every block of the cluster), fences
    ('asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");',
     "*reinterpret_cast<unsigned long long*>(const_cast<void*>(bar)) = 0; (void)count;"),
    ("""    asm volatile("{ .reg .b64 st; mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1; }"
                 ::"r"(smem_addr(bar)), "r"(bytes) : "memory");""",
     "    emu_mbar_update(const_cast<void*>(bar), bytes, true);"),
    ("""    const u32 a = smem_addr(bar);
    u32 done;
    do {
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done) : "r"(a), "r"(parity) : "memory");
    } while (!done);""", "    emu_mbar_wait(bar, parity);"),
    ("""    const unsigned short mask = (unsigned short)((1u << BULK) - 1u);
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1], %2, [%3], %4;"
                 ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)), "h"(mask) : "memory");""",
     "    emu_bulk_copy(dst, src, bytes, const_cast<void*>(bar), BULK);"),
    ("""    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)) : "memory");""",
     "    emu_bulk_copy(dst, src, bytes, const_cast<void*>(bar), 1);"),
    ('asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));', "r = emu_cluster_rank(BULK);"),
    ('asm volatile("barrier.cluster.arrive.release.aligned;\\n\\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");',
     "emu_cluster_sync(BULK);"),
    ('asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");', ";"),
    ('asm volatile("fence.proxy.async.global;" ::: "memory");', ";"),
    ('asm volatile("fence.proxy.async.shared::cta;" ::: "memory");', ";"),
)
# The row kernel's cluster primitives (thread-block clusters of consecutive blocks).
ROW_EDITS = (
    ('asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));', "r = emu_cluster_rank(CLUSTER);"),
    ('asm volatile("mapa.u64 %0, %1, %2;" : "=l"(out) : "l"(p), "r"(rank));',
     "out = reinterpret_cast<unsigned long long>(emu_peer_smem(p, rank, CLUSTER));"),
    ('asm volatile("barrier.cluster.arrive.release.aligned;\\n\\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");',
     "emu_cluster_sync(CLUSTER);"),
)
_MMA = re.compile(r'asm volatile\("mma\.sync\.aligned\.m16n8k(?:16|8)\.row\.col\.f32\.(f16|bf16|tf32)\.\w+\.f32 [^"]*"\s*'
                  r':\s*"\+f"\(([^)]*)\), "\+f"\(([^)]*)\), "\+f"\(([^)]*)\), "\+f"\(([^)]*)\)\s*'
                  r':\s*"r"\(([^)]*)\), "r"\(([^)]*)\), "r"\(([^)]*)\), "r"\(([^)]*)\), "r"\(([^)]*)\), '
                  r'"r"\(([^)]*)\)\);')
_WAIT_GROUP = re.compile(r'asm volatile\("cp\.async\.wait_group \d;" ::: "memory"\);')
_STATIC_SHARED = re.compile(r"__shared__ (?:__align__\(\d+\) )?([\w ]+?) (\w+)((?:\[[^\]]+\])*);")


def _edit(src: str, name: str, edits: tuple) -> str:
    for text, host in edits:
        if src.count(text) != 1:
            raise AssertionError(f"{name} changed: {text[:70]!r} occurs {src.count(text)} times")
        src = src.replace(text, host)
    return src


def _persistent_host(src: str) -> str:
    src = _edit(src, "persistent_rnn.cu", PERSISTENT_EDITS)
    kinds = {"f16": "EMU_MMA_F16", "bf16": "EMU_MMA_BF16", "tf32": "EMU_MMA_TF32"}
    src, n = _MMA.subn(lambda m: f"emu_mma({kinds[m.group(1)]}, {', '.join(m.groups()[1:])});", src)
    if n == 0:
        raise AssertionError("persistent_rnn.cu changed: no mma.sync statement matched")
    src = _WAIT_GROUP.sub(";", src)
    if "asm" in re.sub(r"//.*", "", src):
        raise AssertionError("persistent_rnn.cu: inline PTX left that the host emulation does not replace")
    return src


def host_source(name: str, concurrent: bool = False) -> str:
    """The kernel file as host C++: PTX conversions and flags replaced, shared memory made
    host memory (static __shared__ variables become statics for sequential launches, and
    slots of each block for concurrent ones)."""
    from tf2rt.backends.cuda.persistent import kernel_source

    src = kernel_source(name)
    kernels = resources.files("tf2rt.backends.cuda").joinpath("kernels")
    for header, host in (("types.cuh", HOST_TYPES), ("flags.cuh", HOST_FLAGS)):
        text = kernels.joinpath(header).read_text()
        if header == "types.cuh" and text not in src:
            raise AssertionError("types.cuh is not inlined verbatim")
        if header == "flags.cuh":
            text = text.replace('#include "types.cuh"\n', "")  # inlined once, above
        src = src.replace(text, host)
    if name == "persistent_rnn.cu":
        src = _persistent_host(src)
    if name == "row_rnn.cu":
        src = _edit(src, name, ROW_EDITS)
    return host_shared(src, concurrent)


def host_shared(src: str, concurrent: bool = False) -> str:
    """Shared memory of CUDA source `src` made host memory: dynamic shared memory the running
    block's buffer, static __shared__ variables statics (sequential launches) or slots of
    each block (concurrent ones)."""
    src = re.sub(r"extern __shared__ (?:__align__\(\d+\) )?([\w ]+?) (\w+)\[\];",
                 r"\1* \2 = reinterpret_cast<\1*>(emu_block_smem());", src)
    if concurrent:
        return _STATIC_SHARED.sub(lambda m: f'auto& {m.group(2)} = *emu_static<{m.group(1)}{m.group(3) or ""}>'
                                            f'("{m.group(2)}");', src)
    return src.replace("__shared__", "static")


def _wrappers(preprocessed: str, concurrent: bool) -> tuple[str, dict[str, list[str]]]:
    """launch_<kernel> functions for the kernels the configuration defines."""
    kernels, wrappers = {}, []
    for m in _KERNEL.finditer(preprocessed):
        kname, params = m.group(1), [" ".join(p.split()) for p in m.group(2).split(",") if p.strip()]
        kernels[kname] = params
        names = ", ".join(re.findall(r"(\w+)$", p)[0] for p in params)
        # A failed launch (the emulator's deadlock checks) returns its message instead of
        # letting the C++ exception end the process.
        wrappers.append(f'extern "C" const char* launch_{kname}(unsigned grid, unsigned block, size_t smem, '
                        f'{", ".join(params)}) {{ static std::string err; try {{ emu_launch(grid, block, smem, '
                        f'{str(concurrent).lower()}, [&] {{ {kname}({names}); }}); return nullptr; }} '
                        f'catch (const std::exception& e) {{ err = e.what(); return err.c_str(); }} }}')
    return "\n".join(wrappers) + "\n", kernels


def host_kernels(name: str, defines: dict[str, int], concurrent: bool = False,
                 source: str | None = None) -> dict[str, HostKernel]:
    """Compile kernel file `name` with `defines` for the host (cached by content);
    `concurrent`: launches run every block at once (kernels whose blocks wait for each other);
    `source`: host C++ to build instead of the file (e.g. a benchmark's kernel after its own
    edits and host_shared), `name` then only names the build."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) for the host emulation of the kernels")
    src = f'#include "{HEADER}"\n' + (host_source(name, concurrent) if source is None else source)
    flags = ["-std=c++20", "-O1", "-fno-strict-aliasing", "-shared", "-fPIC", "-pthread", "-w"]
    flags += [f"-D{k}={v}" for k, v in sorted(defines.items())]
    # this file too: it writes the launch wrappers
    key = hashlib.sha256((src + HEADER.read_text() + Path(__file__).read_text() + " ".join(flags)
                          + str(concurrent)).encode()).hexdigest()[:20]
    _BUILD.mkdir(parents=True, exist_ok=True)
    lib_path = _BUILD / f"{name.split('.')[0]}-{key}.so"
    cpp = _BUILD / f"{key}-{os.getpid()}.cpp"  # per process: test workers build side by side
    cpp.write_text(src)
    pre = subprocess.run([cxx, *flags, "-E", "-P", str(cpp)], capture_output=True, text=True)
    if pre.returncode != 0:
        raise RuntimeError(f"host build of {name} failed:\n{pre.stderr[-4000:]}")
    wrappers, kernels = _wrappers(pre.stdout, concurrent)
    if not lib_path.exists():
        full = _BUILD / f"{key}-{os.getpid()}-full.cpp"
        full.write_text(src + "\n" + wrappers)
        tmp = lib_path.with_suffix(f".{os.getpid()}.tmp")
        done = subprocess.run([cxx, *flags, str(full), "-o", str(tmp)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"host build of {name} failed:\n{done.stderr[-4000:]}")
        tmp.replace(lib_path)
    lib = ctypes.CDLL(str(lib_path))
    return {k: HostKernel(lib, k, p) for k, p in kernels.items()}


def persistent_host_kernel(cfg: Any, probe: tuple = (), io_types: tuple | None = None, source: Any = None) -> HostKernel:
    """persistent.compile_kernel's host counterpart (same arguments; probes and patched
    sources are for GPU timing and are not built here): every block at once, as they wait
    for each other, the last one lagging (EMU_SLOW_LAST in cuda_host.h)."""
    from tf2rt.backends.cuda import persistent

    defines = {**cfg.defines(), **persistent.gate_defines(), "NDESC": persistent.NDESC}
    if io_types is not None:
        defines.update(XTYPE=io_types[0], OTYPE=io_types[1], YTYPE=io_types[2])
        if len(io_types) > 3:
            defines["PTYPE"] = io_types[3]
    return host_kernels("persistent_rnn.cu", {**defines, "EMU_SLOW_LAST": 1}, concurrent=True)["persistent_rnn"]


def row_host_kernel(defines: Any, smem_bytes: int) -> HostKernel:
    """row._compile's host counterpart: a cluster's blocks wait for each other, so a
    clustered build runs every block at once (the last one lagging)."""
    defines = dict(defines)
    concurrent = defines["CLUSTER"] > 1
    return host_kernels("row_rnn.cu", {**defines, "EMU_SLOW_LAST": int(concurrent)}, concurrent=concurrent)["row_rnn"]
