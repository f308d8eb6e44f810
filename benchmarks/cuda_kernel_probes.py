"""Timing probes for the persistent kernel: source patches that switch parts of a step off.

`bench_cuda_rnn.py --probe` times a build with parts of its step loop removed (the dot
products, the spin waits, the row copies, ...) to see where a step's time goes. The
shipped kernel (tf2rt/backends/cuda/kernels/persistent_rnn.cu) has no such switches: each
probe here is a list of (text, replacement) edits applied to the kernel's source before
it is compiled. Outputs are wrong with any probe on; they are for timing only.

An edit whose text no longer occurs exactly once in the kernel is an error (the kernel
changed: update the probe), so a probe never silently times the full kernel.
"""

from __future__ import annotations

#: Probe name -> edits (text in the kernel source, its replacement).
PROBES: dict[str, tuple[tuple[str, str], ...]] = {
    # every wait on another CTA's h (tags, counters and flags) returns at once
    "PROBE_NO_SPIN": (
        ("#define SPIN_WHILE(cond) while (cond) {}\n", "#define SPIN_WHILE(cond) (void)0\n"),
        ("""                    if (f) {
                        u32 v;
                        do {
                            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(f) : "memory");
                        } while (v != epoch);
                    }
""", "                    (void)f;\n"),
    ),
    # the CUDA-core and tensor-core dot products return before multiplying
    "PROBE_NO_DOT": (
        ("    if (r0 >= nrows) return;\n", "    if (r0 >= nrows) return;\n    return;\n"),
        ("""    const int g = lane >> 2, t = lane & 3;
#if MT_SHARE
""", """    const int g = lane >> 2, t = lane & 3;
    return;
#if MT_SHARE
"""),
    ),
    # the gates add one K slice's partial products instead of all of them (the cost of the
    # warps' split of K: their partial sums in shared memory, each gate reading every slice)
    "PROBE_ONE_SLICE": (
        ("    for (int k = 0; k < KSPLIT_M; ++k) acc += red[(size_t)(k * MT + mt) * 128 + rl * 8 + n];\n",
         "    for (int k = 0; k < 1; ++k) acc += red[(size_t)(k * MT + mt) * 128 + rl * 8 + n];\n"),
    ),
    # large-batch step: no projected-input loads
    "PROBE_NO_XG": (
        ("                if (!fused && gi < NPAIR && u < nu && s < s_len[b]) {\n", "                if (false) {\n"),
    ),
    # large-batch step: no row copies after the flags
    "PROBE_NO_COPY": (
        ("                const bool cp_own = own_in, cp_below = below_in;\n",
         "                const bool cp_own = false, cp_below = false;\n"),
    ),
    # large-batch step: no gate math
    "PROBE_NO_GATES": (
        ("""                const int gi = threadIdx.x + p * NTHR, b = gi / UPC, u = gi - b * UPC;
                if (gi < NPAIR && u < nu) {
                    const int len = s_len[b];""", """                const int gi = threadIdx.x + p * NTHR, b = gi / UPC, u = gi - b * UPC;
                if (false) {
                    const int len = s_len[b];"""),
    ),
    # large-batch step: no y stores
    "PROBE_NO_Y": (
        ("                    if (y) y_store(y + (size_t)tt * y_ts + b * y_bs + j, active ? hreg[p] : 0.0f);\n", ""),
    ),
    # large-batch step: no flag stores
    "PROBE_NO_FLAG": (
        ("""            if (threadIdx.x == 0) {
                u32* f = const_cast<u32*>(flags(ex + (size_t)s * slot)) + cta;""", """            if (false) {
                u32* f = const_cast<u32*>(flags(ex + (size_t)s * slot)) + cta;"""),
    ),
}


def split_probes(variant: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(probe names, other -D switches) of a variant such as ("PROBE_NO_DOT", "NONCOOP")."""
    return tuple(v for v in variant if v in PROBES), tuple(v for v in variant if v not in PROBES)


def probe_source(source: str, probes: tuple[str, ...]) -> str:
    """`source` (the kernel's CUDA text) with the edits of every probe in `probes` applied."""
    for name in probes:
        if name not in PROBES:
            raise KeyError(f"unknown probe {name!r}: expected one of {', '.join(PROBES)}")
        for text, replacement in PROBES[name]:
            count = source.count(text)
            if count != 1:
                raise ValueError(f"{name}: the kernel has {count} copies of the text this probe edits "
                                 f"(expected 1; update benchmarks/cuda_kernel_probes.py):\n{text}")
            source = source.replace(text, replacement)
    return source
