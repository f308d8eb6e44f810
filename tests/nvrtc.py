"""NVRTC through ctypes, for compiling the persistent kernel on machines without a GPU.

NVRTC is a plain library (the `nvidia-cuda-nvrtc` wheel ships it); compiling CUDA C to PTX
needs no driver and no device, so CPU CI can check that every kernel configuration the
planner produces compiles.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import sys


def find_nvrtc() -> str | None:
    """Path of libnvrtc.so from an installed nvidia-cuda-nvrtc wheel, or None."""
    for base in sys.path:
        hits = sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib", "libnvrtc.so*")))
        hits += sorted(glob.glob(os.path.join(base, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")))
        hits = [h for h in hits if "builtins" not in h]
        if hits:
            return hits[-1]
    return None


class Nvrtc:
    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path)

    def compile(self, source: str, options: list[str]) -> tuple[bool, str]:
        """(ok, PTX text when ok else the compiler log)."""
        return self._compile(source, options, want_log=False)

    def compile_log(self, source: str, options: list[str]) -> tuple[bool, str]:
        """(ok, compiler log): with `-arch=sm_XX -Xptxas -v` among the options the log
        carries ptxas's register and spill report."""
        return self._compile(source, options, want_log=True)

    def resources(self, source: str, options: list[str], entry: str) -> tuple[int, int, str]:
        """(registers, spill-store bytes, ptxas's report) of kernel `entry` built with
        `options` (which name the -arch); asserts that it compiles."""
        ok, log = self.compile_log(source, options + ["-Xptxas", "-v"])
        assert ok, log
        lines = log.splitlines()
        at = next(i for i, line in enumerate(lines) if f"Compiling entry function '{entry}'" in line)
        report = "\n".join(lines[at:at + 4])
        regs = int(re.search(r"Used (\d+) registers", report).group(1))
        spills = int(re.search(r"(\d+) bytes spill stores", report).group(1))
        return regs, spills, report

    def _compile(self, source: str, options: list[str], want_log: bool) -> tuple[bool, str]:
        lib = self.lib
        prog = ctypes.c_void_p()
        rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"persistent_rnn.cu", 0, None, None)
        if rc != 0:
            return False, f"nvrtcCreateProgram failed ({rc})"
        try:
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            rc = lib.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            if rc != 0 or want_log:
                lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
                log = ctypes.create_string_buffer(size.value)
                lib.nvrtcGetProgramLog(prog, log)
                return rc == 0, log.value.decode(errors="replace")
            lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
            ptx = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetPTX(prog, ptx)
            return True, ptx.value.decode(errors="replace")
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))
