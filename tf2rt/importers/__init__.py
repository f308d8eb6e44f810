"""Whole-model front doors: a trained TensorFlow model -> Network -> Engine, in one call.

    engine = tf2rt.convert("model.ckpt", "model.engine")

`SRC` may be a TF1 name-based checkpoint (prefix, `.index`, `.meta` or directory; its
`.meta` graph is read when present), a TF2 object-based checkpoint of a Keras model, a
SavedModel directory, a Keras `.keras` / `.h5` file, or a frozen GraphDef `.pb`.
Keras files (every layer kind, every Keras generation, weights-only files with
`architecture=`) go through the Keras importer (keras); TF1 recurrent checkpoints through
tf1_rnn; graphs through graphdef / saved_model.
See docs/convert.md and docs/classify.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FormatError, UnsupportedError
from .card import ModelCard


def detect_source(src: str | Path) -> str:
    """"keras", "saved_model", "graphdef" or "tf-checkpoint" (TF1 or TF2) for a path `convert` accepts."""
    p = Path(src)
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return "saved_model"
        return "tf-checkpoint"
    if p.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return "keras"
    if p.suffix.lower() == ".pb":
        return "graphdef"
    return "tf-checkpoint"


# A tf.keras SavedModel naming one of these goes through the Keras importer (its config
# and variables); any other SavedModel through the TF graph front end.
_RECURRENT_CLASSES = {"LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN", "CuDNNLSTM", "CuDNNGRU"}


def _saved_model_is_keras_recurrent(path: Path) -> bool:
    """A tf.keras SavedModel whose keras_metadata.pb names a recurrent layer."""
    meta = path / "keras_metadata.pb"
    if not meta.is_file():
        return False
    raw = meta.read_bytes()
    return any(f'"class_name": "{c}"'.encode() in raw for c in _RECURRENT_CLASSES)


def build_network(
    src: str | Path,
    *,
    meta: bool | str | Path = True,
    forget_bias: float | None = None,
    activation: str | None = None,
    states: bool | None = None,
    reset_after: bool | None = None,
    keras_version: int | None = None,
    architecture: Any = None,
    custom_layers: dict[str, Any] | None = None,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    input_shapes: dict[str, list] | None = None,
    ignore: list[str] | None = None,
) -> tuple[Any, ModelCard]:
    """The Network of a model file and its model card (what `convert` builds an engine from).

    Keras only: `architecture` is the model config (dict, `model.to_json()` string or .json
    path) for a file saved with `save_weights`; `custom_layers` maps a layer class name to
    fn(network, config, inputs, weights) -> tensor(s) (see tf2rt.importers.keras.register_layer).
    TF graphs (.pb, SavedModel, checkpoint + .meta): `inputs` / `outputs` (node names, or
    signature keys) cut out the subgraph between them; `input_shapes` maps an input to its dims
    (None or -1 = dynamic). TF1 checkpoints read without a graph: `ignore` names variables to
    leave out (others no cell, embedding or head uses are left out with a warning).
    """
    kind = detect_source(src)
    if (inputs or outputs or input_shapes) and kind not in ("graphdef", "saved_model", "tf-checkpoint"):
        raise UnsupportedError(f"{src}: inputs/outputs/input shapes apply to TensorFlow graphs (.pb, SavedModels, "
                               "checkpoints with a .meta graph) only")
    p = Path(src)
    if p.suffix.lower() == ".onnx":
        raise UnsupportedError(f"{p} is an ONNX model/engine, not a TensorFlow model; run it with "
                               "`tf2rt run` or `tf2rt charrnn` (convert takes checkpoints, SavedModels, .keras/.h5)")
    if kind in ("keras", "saved_model", "graphdef") and not p.exists():
        raise FormatError(f"{p} does not exist")
    if kind == "graphdef":
        from .graphdef import import_graphdef

        return _feed_forward(import_graphdef(p, inputs, outputs, input_shapes=input_shapes), p, "graphdef")
    if (architecture is not None or custom_layers) and kind != "keras":
        raise UnsupportedError(f"{p}: architecture= and custom_layers= apply to Keras .keras/.h5 files only")
    if kind == "saved_model" and not _saved_model_is_keras_recurrent(p):
        from .saved_model import import_saved_model

        return _feed_forward(import_saved_model(p, inputs=inputs, outputs=outputs, input_shapes=input_shapes), p,
                             "saved-model")
    if kind == "keras" or kind == "saved_model":
        from .keras import keras_network

        card = ModelCard(str(p), "saved-model" if kind == "saved_model" else "keras")
        net = keras_network(p, card=card, states=states, activation=activation, reset_after=reset_after,
                            keras_version=keras_version, architecture=architecture, custom_layers=custom_layers)
        return net, card

    from ..weights.tf_checkpoint import open_checkpoint
    from .tf1_rnn import checkpoint_prefix

    prefix = checkpoint_prefix(p)
    if not Path(str(prefix) + ".index").is_file() and not prefix.is_file():
        raise FormatError(
            f"{src}: no TensorFlow checkpoint found (looked for {prefix}.index); pass a checkpoint "
            "prefix (model.ckpt), a .keras/.h5 file or a SavedModel directory"
        )
    source = open_checkpoint(prefix)
    try:
        if _object_based(source):
            from .keras_checkpoint import keras_checkpoint_network

            card = ModelCard(str(prefix), "tf2-checkpoint")
            net = keras_checkpoint_network(source, card=card, states=states, activation=activation,
                                           reset_after=reset_after)
        else:
            card = ModelCard(str(prefix), "tf1-checkpoint")
            net = _tf1_network(source, prefix, meta=meta, forget_bias=forget_bias, activation=activation,
                               graph_io=(inputs, outputs, input_shapes), ignore=tuple(ignore or ()),
                               states=states, card=card)
    finally:
        source.close()
    return net, card


def _tf1_network(source: Any, prefix: Path, *, meta: Any, card: ModelCard, graph_io: tuple = (None, None, None),
                 **options: Any) -> Any:
    """A TF1 checkpoint: from its `.meta` graph when there is one (the graph decides what is
    computed; variables off the inference path are ignored), else from variable names."""
    from .meta_graph import find_meta
    from .tf1_rnn import tf1_network

    meta_path = None
    if meta:
        meta_path = Path(meta) if isinstance(meta, (str, Path)) and not isinstance(meta, bool) else find_meta(prefix)
    overrides = options.get("forget_bias") is not None or options.get("activation") is not None
    graph_error = None
    if any(graph_io) and meta_path is None:
        raise UnsupportedError(f"{prefix}: inputs/outputs/input shapes need the checkpoint's .meta graph")
    if meta_path is not None and (not overrides or any(graph_io)):
        from .tf_meta import import_meta_checkpoint

        try:
            net = import_meta_checkpoint(source, meta_path, name=prefix.name, card=card, inputs=graph_io[0],
                                         outputs=graph_io[1], input_shapes=graph_io[2])
            card.detected["meta_graph"] = str(meta_path)
            return net
        except UnsupportedError as exc:
            if any(graph_io):
                raise
            graph_error = exc
            card.ignored = 0
            card.detected.pop("graph", None)
    try:
        net = tf1_network(source, prefix, meta=meta, card=card, **options)
        if graph_error is not None:
            card.assume(f"the .meta graph could not be converted ({graph_error}); the model was read by "
                        "variable names instead")
        return net
    except (UnsupportedError, FormatError) as exc:
        if graph_error is None:
            raise
        raise UnsupportedError(f"{prefix}: the .meta graph could not be converted ({graph_error}); "
                               f"reading the checkpoint by variable names failed too ({exc})") from None


def _feed_forward(net: Any, path: Path, fmt: str) -> tuple[Any, ModelCard]:
    card = ModelCard(str(path), fmt, summary=f"feed-forward network of {len(net.layers)} layers")
    card.detected["layers"] = dict(sorted(_count(layer.type for layer in net.layers).items()))
    return net, card


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def _object_based(source: Any) -> bool:
    return any(i.key and "/.ATTRIBUTES/" in i.key for i in source.infos())


def convert(
    src: str | Path,
    output: str | Path | None = None,
    *,
    precision: str = "fp32",
    optimize: bool = True,
    meta: bool | str | Path = True,
    forget_bias: float | None = None,
    activation: str | None = None,
    states: bool | None = None,
    reset_after: bool | None = None,
    keras_version: int | None = None,
    architecture: Any = None,
    custom_layers: dict[str, Any] | None = None,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    input_shapes: dict[str, list] | None = None,
    ignore: list[str] | None = None,
) -> Any:
    """Convert a trained TensorFlow model to an Engine (saved to `output` if given).

    Options set what a checkpoint does not store: `forget_bias` and `activation` of TF1
    cells (else read from the `.meta` graph, else the TF default, recorded as an
    assumption in the engine's model card); `states` exposes initial/final state
    tensors for streaming (default: on for unidirectional RNNs); `meta=False` ignores a
    `.meta` file, a path uses another one. Keras: `architecture` (model config for a
    weights-only file) and `custom_layers` (class name -> converter), see `build_network`.
    """
    from ..engine import build_engine
    from ..outputs import check_not_input, check_writable, input_files

    if precision not in ("fp32", "fp16"):
        raise UnsupportedError(f"precision {precision!r} is not supported by convert; use fp32 or fp16")
    model_files = input_files(src) | ({Path(meta)} if isinstance(meta, (str, Path)) else set())
    if output is not None:  # refuse a bad output (or one of the model's own files) before converting
        check_not_input(check_writable(output, "engine"), model_files, "engine")
    net, card = build_network(src, meta=meta, forget_bias=forget_bias, activation=activation, states=states,
                              reset_after=reset_after, keras_version=keras_version, architecture=architecture,
                              custom_layers=custom_layers, inputs=inputs, outputs=outputs, input_shapes=input_shapes,
                              ignore=ignore)
    engine = build_engine(net, precision=precision, optimize=optimize,
                          metadata={"source": str(src), "model": card.to_dict()})
    if output is not None:
        engine.save(output, model_files)
    return engine


__all__ = ["convert", "build_network", "detect_source", "ModelCard"]
