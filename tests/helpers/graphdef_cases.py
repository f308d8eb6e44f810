"""Small TensorFlow graphs (tf.compat.v1, constants as weights) for the GraphDef op tests:
each case builds its graph, runs it in a TensorFlow session and writes the GraphDef."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

RNG = np.random.default_rng(7)


def rand(*shape: int, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    return RNG.uniform(lo, hi, shape).astype(np.float32)


class Case:
    """A built graph: its .pb, the feeds, TensorFlow's outputs (by node name)."""

    def __init__(self, pb: Path, feeds: dict[str, np.ndarray], refs: dict[str, np.ndarray]):
        self.pb, self.feeds, self.refs = pb, feeds, refs

    @property
    def outputs(self) -> list[str]:
        return list(self.refs)


@contextmanager
def control_flow(tf: Any, v2: bool) -> Iterator[None]:
    """Graphs built inside take TensorFlow's TF2 control-flow form (While/If functions) or, with
    v2=False, the TF1 one (Enter/Merge/Switch frames); TF2's is restored after."""
    tf1 = tf.compat.v1
    (tf1.enable_control_flow_v2 if v2 else tf1.disable_control_flow_v2)()
    try:
        yield
    finally:
        tf1.enable_control_flow_v2()


def build_case(tf: Any, path: Path, fn: Callable, feeds: dict[str, np.ndarray],
               shapes: dict[str, list] | None = None) -> Case:
    """fn(tf, placeholders) -> list of output tensors; placeholders are named after the feeds."""
    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        phs = {k: v1.placeholder(tf.as_dtype(v.dtype), (shapes or {}).get(k, list(v.shape)), name=k)
               for k, v in feeds.items()}
        outs = fn(tf, phs)
        outs = [tf.identity(o, name=f"out{i}") for i, o in enumerate(outs)]
        with v1.Session(graph=g) as sess:
            vals = sess.run(outs, {phs[k]: v for k, v in feeds.items()})
    path.write_bytes(g.as_graph_def().SerializeToString())
    return Case(path, feeds, {o.op.name: np.asarray(v) for o, v in zip(outs, vals)})


def max_err(y: np.ndarray, ref: np.ndarray) -> float:
    """Largest difference, relative to the output's scale when that is above 1."""
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    if y.size == 0:
        return 0.0
    return float(np.max(np.abs(y - ref)) / max(1.0, float(np.max(np.abs(ref)))))


def check_case(case: Case, tol: float = 1e-5, net: Any = None, **kw: Any) -> Any:
    """Convert case.pb, run it on onnxruntime and the reference backend, compare with TensorFlow."""
    from tf2rt.engine import build_engine
    from tf2rt.importers.graphdef import import_graphdef

    if net is None:
        net = import_graphdef(case.pb, outputs=case.outputs, **kw)
    engine = build_engine(net)
    for backend in ("onnxruntime", "reference"):
        got = engine.run(case.feeds, backend=backend)
        for name, ref in case.refs.items():
            err = max_err(got[name], ref)
            assert err <= tol, f"{case.pb.stem} {name} on {backend}: error {err:.3g} > {tol}"
    return net
