"""Run the `tf2rt` CLI on a hostile file in a child process with bounded memory and time.

The child sets RLIMIT_AS before importing tf2rt and reports its peak resident memory, so a
test can tell "refused with a clear error" from "killed", "MemoryError" or "hung".
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

MEM_LIMIT = 3 << 30  # address space for the child: far below what the hostile files ask for
TIMEOUT = 60  # seconds
PEAK_RSS = 1536 << 20  # what a refusal may cost in resident memory

_CHILD = r"""
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ["tf2rt"] + sys.argv[2:]
code = 1
try:
    from tf2rt.cli import main
    code = main(sys.argv[1:])
finally:
    # VmHWM belongs to this program's memory map; ru_maxrss may carry the forking parent's peak
    try:
        peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sys.stderr.write(f"\nPEAK_RSS={peak}\n")
sys.exit(code)
"""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str  # without the PEAK_RSS line
    peak: int

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(args: list[str], env: dict[str, str] | None = None, mem: int = MEM_LIMIT,
            timeout: int = TIMEOUT, cwd: str | None = None) -> Result:
    full_env = dict(os.environ)
    full_env.pop("TF2RT_MAX_BYTES", None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(mem), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=cwd, errors="replace")
    lines, peak = [], -1
    for line in proc.stderr.splitlines():
        if line.startswith("PEAK_RSS="):
            peak = int(line.split("=", 1)[1])
        else:
            lines.append(line)
    return Result(proc.returncode, proc.stdout, "\n".join(lines), peak)


def assert_refused(res: Result, *needles: str) -> str:
    """Exit status 2, one error line naming the problem, no traceback, bounded memory."""
    assert res.code == 2, f"exit {res.code}\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-4000:]}"
    assert "Traceback" not in res.stderr and "MemoryError" not in res.stderr, res.stderr[-4000:]
    lines = res.error_lines
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("tf2rt ") and ": error: " in lines[0], lines[0]
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    assert 0 < res.peak < PEAK_RSS, f"peak RSS {res.peak} bytes"
    return lines[0]


_PY_CHILD = r"""
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
code = 1
try:
    from tf2rt.errors import Tf2rtError
    try:
        exec(sys.argv[2], {"ARGS": sys.argv[3:]})
        code = 0
    except Tf2rtError as exc:
        sys.stderr.write(f"tf2rt python: error: {exc}\n")
        code = 2
finally:
    # VmHWM belongs to this program's memory map; ru_maxrss may carry the forking parent's peak
    try:
        peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sys.stderr.write(f"\nPEAK_RSS={peak}\n")
sys.exit(code)
"""


def run_python(snippet: str, args: list[str], env: dict[str, str] | None = None, mem: int = MEM_LIMIT,
               timeout: int = TIMEOUT) -> Result:
    """Run `snippet` (ARGS = args) under the same limits; a Tf2rtError exits 2 with one line."""
    full_env = dict(os.environ)
    full_env.pop("TF2RT_MAX_BYTES", None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", _PY_CHILD, str(mem), snippet, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=full_env, errors="replace")
    lines, peak = [], -1
    for line in proc.stderr.splitlines():
        if line.startswith("PEAK_RSS="):
            peak = int(line.split("=", 1)[1])
        else:
            lines.append(line)
    return Result(proc.returncode, proc.stdout, "\n".join(lines), peak)
