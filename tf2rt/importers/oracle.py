"""Reference outputs from the original TensorFlow model, for `tf2rt compare ENGINE --against tf:PATH`.

Needs TensorFlow (imported here only). The engine's tensors are matched to the model's by name,
which holds for engines made by `tf2rt convert` and for networks whose inputs and outputs are
named after the TensorFlow tensors:

* `.keras` / `.h5`: the Keras model is called on the engine's model inputs (in order);
  outputs are matched by output-layer name, or taken as is when both have one.
* frozen `.pb`: placeholders are fed and nodes fetched by the engine's tensor names.
* SavedModel: the serving signature is called with the engine's input names as arguments.
* TF1 checkpoint with its `.meta` graph: the graph is restored; placeholders and fetched
  tensors are matched by name.

Running a model with TensorFlow runs what the file says: Keras `Lambda` layers are Python
bytecode, and TensorFlow executes every op of a graph (some read or write files, or call
Python). So unless `trust_model=True` (CLI: `--trust-model`), Keras configs are checked for
Lambda layers / bytecode / foreign modules and loaded in safe mode, and graphs are checked
for such ops on everything that will run, before TensorFlow sees them
(tf2rt/importers/oracle_guard.py).

Engine inputs the model has no counterpart for (e.g. streaming-state inputs) must be all
zeros — the model's own initial state. An output whose TensorFlow value holds the same
numbers in another shape (TF char-RNNs flatten [N, S, V] to [N*S, V]) is reshaped to the
engine's shape.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import Tf2rtError, UnsupportedError


def tf_outputs(path: str, engine: Any, feeds: Mapping[str, Any], trust_model: bool = False) -> dict[str, np.ndarray]:
    """Outputs of the TensorFlow model at `path` for `feeds`, keyed by the engine's output names.

    Without `trust_model`, a model that would run code it carries is refused first."""
    from . import detect_source
    from .oracle_guard import check_graph, check_keras

    p = Path(path)
    if not p.exists() and not Path(f"{p}.index").exists() and not Path(f"{p}.meta").exists():
        raise Tf2rtError(f"--against tf:{path}: no such model")
    kind = detect_source(p)
    if kind == "keras" and not trust_model:
        check_keras(p)  # before TensorFlow is even imported
    tf = _tensorflow()
    if kind == "keras":
        out = _keras(tf, p, engine, feeds, trust_model)
    elif kind == "graphdef":
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(_read(p))
        if not trust_model:
            check_graph(graph_def, engine.output_names, str(p))
        out = _run_graph(tf, engine, feeds, lambda: tf.compat.v1.import_graph_def(graph_def, name=""), None)
    elif kind == "saved_model":
        out = _saved_model(tf, p, engine, feeds, trust_model)
    else:
        out = _tf1_checkpoint(tf, p, engine, feeds, trust_model)
    if not out:
        raise Tf2rtError(f"none of the engine's outputs ({', '.join(engine.output_names)}) has a counterpart "
                         f"in {path}; name the network's outputs after the TensorFlow tensors to compare them")
    batch = int(np.asarray(feeds[engine.inputs[0].name]).shape[0]) if engine.inputs else 1
    return {name: _fit(value, _spec(engine.outputs, name).shape, max(batch, 1)) for name, value in out.items()}


def _read(p: Path) -> bytes:
    from ..limits import max_bytes, read_capped

    return read_capped(p, max_bytes(), "model file")


def _tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TF1 cells of .meta graphs live in tf_keras
    try:
        import tensorflow as tf
    except ImportError:
        raise UnsupportedError("--against tf:... runs the original model with TensorFlow, which is not "
                               "installed (pip install tensorflow)") from None
    return tf


def _spec(specs: Any, name: str) -> Any:
    return next(s for s in specs if s.name == name)


def _fit(value: Any, shape: Any, batch: int) -> np.ndarray:
    """`value` in the engine output's layout: TF char-RNNs flatten [N, S, V] to [N*S, V]."""
    arr = np.asarray(value)
    if arr.ndim == 2 and len(shape) == 3 and shape[-1] in (None, arr.shape[-1]) and arr.shape[0] % batch == 0:
        return arr.reshape(batch, -1, arr.shape[-1])
    return arr


def _model_feeds(engine: Any, feeds: Mapping[str, Any], known: set[str] | None) -> dict[str, np.ndarray]:
    """Engine inputs the model has (all when `known` is None); the others must be zero."""
    used = {}
    for spec in engine.inputs:
        if spec.name not in feeds:  # an optional state left out: zeros, the model's own start
            continue
        value = np.asarray(feeds[spec.name])
        if known is None or spec.name in known:
            used[spec.name] = value
        elif np.any(value):
            raise Tf2rtError(f"engine input {spec.name!r} has no counterpart in the TensorFlow model, so it "
                             "must be all zeros (the model's own initial value) to compare")
    return used


def _keras(tf: Any, path: Path, engine: Any, feeds: Mapping[str, Any], trust_model: bool) -> dict[str, np.ndarray]:
    if path.suffix.lower() == ".keras":
        import keras
    else:
        import tf_keras as keras
    try:  # safe mode: Keras itself also refuses to deserialize lambdas (for .keras files)
        model = keras.models.load_model(str(path), compile=False, safe_mode=not trust_model)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise Tf2rtError(f"--against tf:{path}: Keras cannot load the model ({first})") from None
    state_inputs = {s["input"] for s in engine.metadata.get("states", [])}
    inputs = [s.name for s in engine.inputs if s.name not in state_inputs]
    _model_feeds(engine, feeds, set(inputs))
    if len(inputs) != len(model.inputs):
        raise Tf2rtError(f"the engine has {len(inputs)} model input(s), the Keras model {len(model.inputs)}")
    values = model([np.asarray(feeds[n]) for n in inputs] if len(inputs) > 1 else np.asarray(feeds[inputs[0]]))
    values = values if isinstance(values, (list, tuple)) else [values]
    names = list(getattr(model, "output_names", None) or [t.name.split("/")[0] for t in model.outputs])
    state_outputs = {s["output"] for s in engine.metadata.get("states", [])}
    wanted = [n for n in engine.output_names if n not in state_outputs]
    if len(values) == 1 and len(wanted) == 1:
        return {wanted[0]: np.asarray(values[0])}
    return {n: np.asarray(v) for n, v in zip(names, values) if n in wanted}


def _saved_model(tf: Any, path: Path, engine: Any, feeds: Mapping[str, Any], trust_model: bool) -> dict[str, np.ndarray]:
    if not trust_model:
        _check_saved_model(path)
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures.get("serving_default")
    if fn is None:
        raise Tf2rtError(f"{path} has no serving_default signature")
    known = set(fn.structured_input_signature[1])
    args = {k: tf.constant(v) for k, v in _model_feeds(engine, feeds, known).items()}
    result = fn(**args)
    return {k: np.asarray(v) for k, v in result.items() if k in engine.output_names}


def _check_saved_model(path: Path) -> None:
    """The serving signature's ops (through every function it calls) must be harmless."""
    from tensorflow.core.protobuf import saved_model_pb2

    from .oracle_guard import UntrustedModelError, check_graph

    pb = path / "saved_model.pb"
    sm = saved_model_pb2.SavedModel()
    try:
        sm.ParseFromString(_read(pb))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise Tf2rtError(f"{pb}: not a readable SavedModel ({exc})") from None
    for mg in sm.meta_graphs:
        sig = mg.signature_def.get("serving_default")
        if sig is None:
            continue
        roots = [t.name for t in sig.outputs.values()] + [t.name for t in sig.inputs.values()]
        check_graph(mg.graph_def, roots, str(path))
        return
    raise UntrustedModelError(f"{path} has no serving_default signature to check; refusing to run it "
                              "(pass --trust-model if you trust the file)")


def _tf1_checkpoint(tf: Any, path: Path, engine: Any, feeds: Mapping[str, Any],
                    trust_model: bool) -> dict[str, np.ndarray]:
    from .tf1_rnn import checkpoint_prefix

    prefix = checkpoint_prefix(path)
    meta = Path(f"{prefix}.meta")
    if not meta.is_file():
        raise UnsupportedError(f"--against tf:{path} needs the checkpoint's .meta graph ({meta} not found) to "
                               "run the model with TensorFlow")
    tf1 = tf.compat.v1
    if not trust_model:
        _check_meta_graph(tf, meta, engine)

    def load() -> Any:
        return tf1.train.import_meta_graph(str(meta), clear_devices=True)

    return _run_graph(tf, engine, feeds, load, str(prefix))


def _check_meta_graph(tf: Any, meta: Path, engine: Any) -> None:
    """The fetched outputs and the saver's restore op may only run harmless ops; restore ops
    may only read the checkpoint the saver is given."""
    from .oracle_guard import check_graph, check_restore_inputs

    mg = tf.compat.v1.MetaGraphDef()
    try:
        mg.ParseFromString(_read(meta))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise Tf2rtError(f"{meta}: not a readable .meta graph ({exc})") from None
    roots = list(engine.output_names)
    if mg.HasField("saver_def"):
        roots.append(mg.saver_def.restore_op_name)
        check_restore_inputs(mg.graph_def, mg.saver_def.filename_tensor_name, str(meta))
    check_graph(mg.graph_def, roots, str(meta), allow_restore=True)


def _run_graph(tf: Any, engine: Any, feeds: Mapping[str, Any], load: Any, restore: str | None) -> dict:
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        saver = load()
        ops = {op.name for op in graph.get_operations()}
        placeholders = {op.name for op in graph.get_operations() if op.type.startswith("Placeholder")}
        fetch = [n for n in engine.output_names if n in ops]
        model_feeds = _model_feeds(engine, feeds, placeholders)
        with tf1.Session(graph=graph) as sess:
            if restore is not None:
                saver.restore(sess, restore)
            try:
                values = sess.run([f"{n}:0" for n in fetch], {f"{k}:0": v for k, v in model_feeds.items()})
            except (ValueError, TypeError, tf.errors.OpError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise Tf2rtError(f"TensorFlow could not run the model on these inputs ({first}); pass inputs "
                                 "it accepts with --inputs FILE.npz") from None
    return dict(zip(fetch, values))
