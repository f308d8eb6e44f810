"""Structural fuzzing of graphs with control flow: while loops with TensorArrays (TF1 frames
and TF2 While functions), map_fn over a run-time batch, nested loops and a TF2 If. Each
mutation rewires, drops or retypes node inputs (in the graph and in function bodies); the
conversion then either works or raises a Tf2rtError naming the problem - never another
exception, never a hang."""

from __future__ import annotations

import os
import random
import signal

import numpy as np

from helpers.graphdef_cases import control_flow
from tf2rt.errors import Tf2rtError

EXAMPLES = int(os.environ.get("TF2RT_FUZZ_EXAMPLES", "40"))
OPS = ["Identity", "Add", "Switch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond", "TensorArrayReadV3",
       "TensorArrayWriteV3", "TensorListSetItem", "TensorListGetItem", "While", "StatelessIf", "Range", "Fill",
       "Pad", "TopKV2", "NoOp", "Const"]


def _sources(tf, root):
    tf1 = tf.compat.v1
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    out = []
    for v2 in (False, True):
        with control_flow(tf, v2):
            g = tf.Graph()
            with g.as_default():
                x = tf1.placeholder(tf.float32, [None, 3], name="x")
                mapped = tf.map_fn(lambda r: tf.tanh(tf.matmul(r[None, :], tf.constant(w)))[0], x)
                ta = tf.TensorArray(tf.float32, size=4)

                def body(i, y, ta):
                    _, z = tf.while_loop(lambda j, z: j < i, lambda j, z: (j + 1, z * 0.5), [tf.constant(0), y])
                    return i + 1, z + 1.0, ta.write(i, tf.reduce_sum(z))
                _, y, ta = tf.while_loop(lambda i, y, ta: i < 4, body, [tf.constant(0), x, ta])
                picked = tf.cond(tf.reduce_sum(x) > 0, lambda: y * 2.0, lambda: y - 1.0) if v2 else y * 2.0
                tf.identity(mapped, name="out0")
                tf.identity(ta.stack(), name="out1")
                tf.identity(picked, name="out2")
            path = root / f"cf_{'v2' if v2 else 'v1'}.pb"
            path.write_bytes(g.as_graph_def().SerializeToString())
            out.append(path)
    return out


def _mutate(g, rng: random.Random) -> None:
    names = list(g.nodes)
    refs = [f"{n}:{rng.randint(0, 2)}" for n in names]
    for _ in range(rng.randint(1, 3)):
        n = g.nodes[rng.choice(names)]
        k = rng.random()
        if k < 0.4 and n.inputs:
            n.inputs[rng.randrange(len(n.inputs))] = rng.choice(refs)
        elif k < 0.6 and n.inputs:
            del n.inputs[rng.randrange(len(n.inputs))]
        elif k < 0.8:
            n.op = rng.choice(OPS)
        elif n.attrs:
            n.attrs.pop(rng.choice(list(n.attrs)))
    for f in g.functions.values():
        if f.nodes and rng.random() < 0.5:
            n = rng.choice(f.nodes)
            inner = [i for m in f.nodes for i in m.inputs]
            if n.inputs and inner and rng.random() < 0.5:
                n.inputs[rng.randrange(len(n.inputs))] = rng.choice(inner)
            else:
                n.op = rng.choice(OPS)


def _timeout(signum, frame):
    raise TimeoutError("conversion did not end")


def test_mutated_control_flow_graphs(tf, tmp_path):
    from tf2rt.engine import build_engine
    from tf2rt.importers.graphdef import GraphConverter, read_graphdef

    sources = _sources(tf, tmp_path)
    for path in sources:  # unmutated, both convert: the mutations start from working graphs
        build_engine(GraphConverter(read_graphdef(path)).convert(None, ["out0", "out1", "out2"], "m"))
    rng = random.Random(1234)
    old = signal.signal(signal.SIGALRM, _timeout)
    errors = 0
    try:
        for _ in range(EXAMPLES):
            g = read_graphdef(rng.choice(sources))
            _mutate(g, rng)
            signal.alarm(30)
            try:
                build_engine(GraphConverter(g).convert(None, ["out0", "out1", "out2"], "m"))
            except Tf2rtError as exc:
                errors += 1
                assert "\n" not in str(exc).split(":")[0]  # a message that starts on one line
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert errors > 0  # the mutations do break graphs: the loop above exercised the error paths
