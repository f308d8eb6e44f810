"""Whole-model front doors: a trained TensorFlow model -> Network -> Engine, in one call.

    engine = tf2rt.convert("model.ckpt", "model.engine")

`SRC` may be a TF1 name-based checkpoint (prefix, `.index`, `.meta` or directory; its
`.meta` graph is read when present), a TF2 object-based checkpoint of a Keras model, a
SavedModel directory, or a Keras `.keras` / `.h5` file. See docs/convert.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FormatError, UnsupportedError
from .card import ModelCard


def detect_source(src: str | Path) -> str:
    """"keras", "saved_model", "tf-checkpoint" (TF1 or TF2) for a path `convert` accepts."""
    p = Path(src)
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return "saved_model"
        return "tf-checkpoint"
    if p.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return "keras"
    return "tf-checkpoint"


def build_network(
    src: str | Path,
    *,
    meta: bool | str | Path = True,
    forget_bias: float | None = None,
    activation: str | None = None,
    states: bool | None = None,
    reset_after: bool | None = None,
    keras_version: int | None = None,
) -> tuple[Any, ModelCard]:
    """The Network of a model file and its model card (what `convert` builds an engine from)."""
    kind = detect_source(src)
    p = Path(src)
    if p.suffix.lower() == ".onnx":
        raise UnsupportedError(f"{p} is an ONNX model/engine, not a TensorFlow model; run it with "
                               "`tf2rt run` or `tf2rt charrnn` (convert takes checkpoints, SavedModels, .keras/.h5)")
    if kind == "keras" or kind == "saved_model":
        from .keras_rnn import keras_network

        if not p.exists():
            raise FormatError(f"{p} does not exist")
        card = ModelCard(str(p), "saved-model" if kind == "saved_model" else "keras")
        net = keras_network(p, card=card, states=states, activation=activation,
                            reset_after=reset_after, keras_version=keras_version)
        return net, card

    from ..weights.tf_checkpoint import open_checkpoint
    from .tf1_rnn import checkpoint_prefix, tf1_network

    prefix = checkpoint_prefix(p)
    if not Path(str(prefix) + ".index").is_file() and not prefix.is_file():
        raise FormatError(
            f"{src}: no TensorFlow checkpoint found (looked for {prefix}.index); pass a checkpoint "
            "prefix (model.ckpt), a .keras/.h5 file or a SavedModel directory"
        )
    source = open_checkpoint(prefix)
    try:
        if _object_based(source):
            from .keras_rnn import keras_checkpoint_network

            card = ModelCard(str(prefix), "tf2-checkpoint")
            net = keras_checkpoint_network(source, card=card, states=states, activation=activation,
                                           reset_after=reset_after)
        else:
            card = ModelCard(str(prefix), "tf1-checkpoint")
            net = tf1_network(source, prefix, meta=meta, forget_bias=forget_bias, activation=activation,
                              states=states, card=card)
    finally:
        source.close()
    return net, card


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
) -> Any:
    """Convert a trained TensorFlow recurrent model to an Engine (saved to `output` if given).

    Options set what a checkpoint does not store: `forget_bias` and `activation` of TF1
    cells (else read from the `.meta` graph, else the TF default, recorded as an
    assumption in the engine's model card); `states` exposes initial/final state
    tensors for streaming (default: on for unidirectional RNNs); `meta=False` ignores a
    `.meta` file, a path uses another one.
    """
    from ..engine import build_engine

    if precision not in ("fp32", "fp16"):
        raise UnsupportedError(f"precision {precision!r} is not supported by convert; use fp32 or fp16")
    net, card = build_network(src, meta=meta, forget_bias=forget_bias, activation=activation, states=states,
                              reset_after=reset_after, keras_version=keras_version)
    engine = build_engine(net, precision=precision, optimize=optimize,
                          metadata={"source": str(src), "model": card.to_dict()})
    if output is not None:
        engine.save(output)
    return engine


__all__ = ["convert", "build_network", "detect_source", "ModelCard"]
