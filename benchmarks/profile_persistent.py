"""Run one persistent-kernel stack a few times, for a profiler (ncu) to pick a launch.

    ncu --kernel-name persistent_rnn --launch-skip 3 --launch-count 1 --section SourceCounters \
        --section WarpStateStats python benchmarks/profile_persistent.py --cell lstm --hidden 512 --batch 64

Prints the plan (engine, kernel build, shared memory) and the median time of the calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--calls", type=int, default=6)
    args = ap.parse_args()

    import torch

    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack, node_spec

    G = {"lstm": 4, "gru": 3}[args.cell]
    H = args.hidden
    rng = np.random.default_rng(0)
    attrs = {"hidden_size": H, "linear_before_reset": 1} if args.cell == "gru" else {"hidden_size": H}
    specs = [node_spec(args.cell.upper(), attrs, rng.uniform(-.05, .05, (1, G * H, H)).astype(np.float32),
                       rng.uniform(-.05, .05, (1, G * H, H)).astype(np.float32),
                       rng.uniform(-.5, .5, (1, 2 * G * H)).astype(np.float32), None) for _ in range(args.layers)]
    stack, plan = make_stack(specs, args.batch, args.T, args.dtype, device_limits(), prefer="persistent")
    print(plan.describe(), plan.kernel)
    x = torch.randn(args.T, args.batch, H, device="cuda", dtype=getattr(torch, args.dtype))
    times = []
    for _ in range(args.calls):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        stack(x)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e6)
    print(f"median {np.median(times):.1f} us over {args.calls} calls (wall clock, eager)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
