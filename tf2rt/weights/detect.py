"""Recognise RNN cells in a set of tensors from their names and shapes.

Knows TF1 cells (BasicLSTMCell, LSTMCell/LSTMBlockCell, GRUCell, GRUBlockCell,
BasicRNNCell), TF cuDNN-compatible cells (both historic naming schemes: the later one with
summed biases, the earlier one with extra `bias_cudnn_*` tensors), opaque cuDNN parameter
buffers, and Keras LSTM/GRU/SimpleRNN (and CuDNNLSTM/CuDNNGRU) in TF2 checkpoints, legacy
`.h5` and Keras 3 files. Each hit reports the storage format TensorRT's guide distinguishes:
"platform-independent" (one kernel per cell, biases summed) or "cudnn-compatible" (input and
recurrent parts of the candidate kept apart).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Iterable

from .base import VARIABLE, TensorInfo, WeightSource

PLATFORM_INDEPENDENT = "platform-independent"
CUDNN_COMPATIBLE = "cudnn-compatible"
CUDNN_OPAQUE = "cudnn-opaque"


@dataclass
class DetectedCell:
    """One direction of one recurrent layer found in a weight source."""

    kind: str  # "lstm" | "gru" | "rnn"
    cell: str  # the TensorFlow / Keras class that stores weights this way
    storage: str  # PLATFORM_INDEPENDENT | CUDNN_COMPATIBLE | CUDNN_OPAQUE
    scope: str  # common name prefix of its tensors
    input_size: int  # 0 when unknown (opaque buffers)
    hidden_size: int
    layer: int | None = None  # position in a stack (cell_<l>, layer_with_weights-<l>)
    direction: str | None = None  # "forward" | "backward" for bidirectional models
    tensors: dict[str, str] = field(default_factory=dict)  # role -> tensor name
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        where = [f"layer {self.layer}"] if self.layer is not None else []
        if self.direction:
            where.append(self.direction)
        sizes = f"input {self.input_size}, hidden {self.hidden_size}" if self.hidden_size else "sizes unknown"
        text = f"{self.scope}: {self.cell} ({self.kind.upper()}, {self.storage}; {sizes}"
        text += "".join(f"; {w}" for w in where) + ")"
        return text + "".join(f"\n    note: {n}" for n in self.notes)


def detect_cells(source: WeightSource | Iterable[TensorInfo]) -> list[DetectedCell]:
    """Every recurrent cell recognisable in `source` (model variables only), by scope."""
    infos = source.infos() if isinstance(source, WeightSource) else list(source)
    infos = [i for i in infos if i.kind == VARIABLE and not isinstance(i.dtype, str)]
    by_name = {i.name: i for i in infos}
    found: list[DetectedCell] = []
    claimed: set[str] = set()
    for finder in (_tf1_lstm, _tf1_gru, _tf1_rnn, _cudnn_gru, _opaque, _keras, _keras3_vars):
        for cell in finder(by_name):
            if not claimed.intersection(cell.tensors.values()):
                claimed.update(cell.tensors.values())
                found.append(cell)
    for cell in found:
        _locate(cell, by_name)
    return sorted(found, key=lambda c: c.scope)


# -- helpers ---------------------------------------------------------------------------


def _shape(by_name: dict[str, TensorInfo], name: str) -> tuple[int, ...] | None:
    info = by_name.get(name)
    return tuple(info.shape) if info is not None else None


def _scopes(by_name: dict[str, TensorInfo], suffix: str) -> list[str]:
    return [n[: -len(suffix)] for n in by_name if n.endswith(suffix)]


def _locate(cell: DetectedCell, by_name: dict[str, TensorInfo]) -> None:
    """Fill in layer index and direction from the scope (and stored keys)."""
    text = cell.scope + " " + " ".join(by_name[t].key for t in cell.tensors.values() if t in by_name)
    if cell.layer is None:
        m = re.findall(r"(?:^|/)cell_(\d+)(?:/|$)", cell.scope) or re.findall(r"layer_with_weights-(\d+)", text)
        if m:
            cell.layer = int(m[-1])
    if cell.direction is None:
        parts = cell.scope.split("/")
        if "fw" in parts or any(p.startswith("forward_") for p in parts):
            cell.direction = "forward"
        elif "bw" in parts or any(p.startswith("backward_") for p in parts):
            cell.direction = "backward"


# -- TF1 cells -------------------------------------------------------------------------

_LSTM_SCOPES = {
    "basic_lstm_cell": ("BasicLSTMCell", PLATFORM_INDEPENDENT),
    "lstm_cell": ("LSTMCell/LSTMBlockCell", PLATFORM_INDEPENDENT),
    "cudnn_compatible_lstm_cell": ("CudnnCompatibleLSTMCell", CUDNN_COMPATIBLE),
}


def _tf1_lstm(by_name: dict[str, TensorInfo]) -> Iterable[DetectedCell]:
    for scope in _scopes(by_name, "/kernel"):
        base = scope.rsplit("/", 1)[-1]
        if base not in _LSTM_SCOPES or scope + "/recurrent_kernel" in by_name:  # Keras, not TF1
            continue
        k, b = _shape(by_name, scope + "/kernel"), _shape(by_name, scope + "/bias")
        if k is None or b is None or len(k) != 2 or k[1] % 4 or b != (k[1],):
            continue
        hidden = k[1] // 4
        cls, storage = _LSTM_SCOPES[base]
        tensors = {"kernel": scope + "/kernel", "bias": scope + "/bias"}
        notes = []
        proj = _shape(by_name, scope + "/projection/kernel")
        depth = hidden
        if proj is not None and len(proj) == 2 and proj[0] == hidden:
            depth = proj[1]
            tensors["projection"] = scope + "/projection/kernel"
            notes.append(f"projection to {depth} units (LSTMCell num_proj)")
        peep = [d for d in ("w_i_diag", "w_f_diag", "w_o_diag") if f"{scope}/{d}" in by_name]
        for d in peep:
            tensors[d] = f"{scope}/{d}"
        if peep:
            notes.append("peephole connections (use_peepholes=True)")
        for extra in sorted(n for n in by_name if re.fullmatch(re.escape(scope) + r"/bias_cudnn[ _]\d+", n)):
            tensors[extra.rsplit("/", 1)[-1]] = extra
        if any(r.startswith("bias_cudnn") for r in tensors):
            notes.append("early cuDNN naming: separate input/recurrent biases in bias_cudnn_0/1")
        if k[0] <= depth:
            continue
        if storage == PLATFORM_INDEPENDENT:
            notes.append("forget_bias is not stored (TF default 1.0 is added at run time)")
        yield DetectedCell("lstm", cls, storage, scope, k[0] - depth, hidden, tensors=tensors, notes=notes)


def _tf1_gru(by_name: dict[str, TensorInfo]) -> Iterable[DetectedCell]:
    for scope in _scopes(by_name, "/gates/kernel"):
        base = scope.rsplit("/", 1)[-1]
        gk, gb = _shape(by_name, scope + "/gates/kernel"), _shape(by_name, scope + "/gates/bias")
        ck, cb = _shape(by_name, scope + "/candidate/kernel"), _shape(by_name, scope + "/candidate/bias")
        if base == "cudnn_compatible_gru_cell" or gk is None or ck is None or len(gk) != 2 or gk[1] % 2:
            continue
        hidden = gk[1] // 2
        if ck != (gk[0], hidden) or gb != (2 * hidden,) or cb != (hidden,) or gk[0] <= hidden:
            continue
        tensors = {"gates/kernel": scope + "/gates/kernel", "gates/bias": scope + "/gates/bias",
                   "candidate/kernel": scope + "/candidate/kernel", "candidate/bias": scope + "/candidate/bias"}
        yield DetectedCell("gru", "GRUCell" if base == "gru_cell" else "GRUCell (GRUBlockCellV2)",
                           PLATFORM_INDEPENDENT, scope, gk[0] - hidden, hidden, tensors=tensors,
                           notes=["reset gate applied before the recurrent matmul (TF GRUCell)"])
    # GRUBlockCell (v1) names: w_ru/b_ru and w_c/b_c, with the two kernels' names swapped.
    for scope in _scopes(by_name, "/w_ru"):
        a, c = _shape(by_name, scope + "/w_ru"), _shape(by_name, scope + "/w_c")
        bru, bc = _shape(by_name, scope + "/b_ru"), _shape(by_name, scope + "/b_c")
        if a is None or c is None or bru is None or bc is None or len(a) != 2 or len(c) != 2:
            continue
        gates, cand = (a, c) if a[1] == 2 * c[1] else (c, a)
        hidden = cand[1]
        if gates[1] != 2 * hidden or gates[0] != cand[0] or gates[0] <= hidden:
            continue
        yield DetectedCell("gru", "GRUBlockCell", PLATFORM_INDEPENDENT, scope, gates[0] - hidden, hidden,
                           tensors={"w_ru": scope + "/w_ru", "w_c": scope + "/w_c",
                                    "b_ru": scope + "/b_ru", "b_c": scope + "/b_c"},
                           notes=["reset gate applied before the recurrent matmul"])


def _tf1_rnn(by_name: dict[str, TensorInfo]) -> Iterable[DetectedCell]:
    for scope in _scopes(by_name, "/kernel"):
        if scope.rsplit("/", 1)[-1] not in ("basic_rnn_cell", "cudnn_compatible_rnn_cell"):
            continue
        k, b = _shape(by_name, scope + "/kernel"), _shape(by_name, scope + "/bias")
        if k is None or b is None or len(k) != 2 or b != (k[1],) or k[0] <= k[1]:
            continue
        yield DetectedCell("rnn", "BasicRNNCell", PLATFORM_INDEPENDENT, scope, k[0] - k[1], k[1],
                           tensors={"kernel": scope + "/kernel", "bias": scope + "/bias"},
                           notes=["activation is not stored (tanh by default)"])


def _cudnn_gru(by_name: dict[str, TensorInfo]) -> Iterable[DetectedCell]:
    for scope in _scopes(by_name, "/gates/kernel"):
        if scope.rsplit("/", 1)[-1] != "cudnn_compatible_gru_cell":
            continue
        gk = _shape(by_name, scope + "/gates/kernel")
        ik = _shape(by_name, scope + "/candidate/input_projection/kernel")
        hk = _shape(by_name, scope + "/candidate/hidden_projection/kernel")
        if gk is None or ik is None or hk is None or len(ik) != 2:
            continue
        inp, hidden = ik
        if gk != (inp + hidden, 2 * hidden) or hk != (hidden, hidden):
            continue
        tensors = {r: f"{scope}/{r}" for r in (
            "gates/kernel", "gates/bias", "candidate/input_projection/kernel",
            "candidate/input_projection/bias", "candidate/hidden_projection/kernel",
            "candidate/hidden_projection/bias") if f"{scope}/{r}" in by_name}
        notes = ["reset gate applied after the recurrent matmul (cuDNN GRU)"]
        for extra in sorted(n for n in by_name if re.fullmatch(re.escape(scope) + r"/bias_cudnn[ _]\d+", n)):
            tensors[extra.rsplit("/", 1)[-1]] = extra
        if any(r.startswith("bias_cudnn") for r in tensors):
            notes.append("early cuDNN naming: separate biases in bias_cudnn tensors")
        yield DetectedCell("gru", "CudnnCompatibleGRUCell", CUDNN_COMPATIBLE, scope, inp, hidden,
                           tensors=tensors, notes=notes)


def _opaque(by_name: dict[str, TensorInfo]) -> Iterable[DetectedCell]:
    kinds = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "rnn", "rnn_relu": "rnn"}
    for scope in _scopes(by_name, "/opaque_kernel"):
        m = re.search(r"cudnn_(lstm|gru|rnn_tanh|rnn_relu)", scope.rsplit("/", 1)[-1])
        kind = kinds[m.group(1)] if m else "lstm"
        yield DetectedCell(kind, "CudnnLSTM/CudnnGRU/CudnnRNN (opaque parameters)", CUDNN_OPAQUE, scope, 0, 0,
                           tensors={"opaque_kernel": scope + "/opaque_kernel"},
                           notes=["one opaque cuDNN buffer; sizes need the layer's configuration"])


# -- Keras -----------------------------------------------------------------------------

_KERAS = {4: ("lstm", "LSTM"), 3: ("gru", "GRU"), 1: ("rnn", "SimpleRNN")}


def _keras_cell(scope: str, k, r, b, tensors: dict[str, str]) -> DetectedCell | None:
    if k is None or r is None or len(k) != 2 or len(r) != 2 or r[0] == 0 or r[1] % r[0]:
        return None
    units, n = r[0], r[1] // r[0]
    if n not in _KERAS or k[1] != r[1]:
        return None
    kind, cls = _KERAS[n]
    notes: list[str] = []
    storage = PLATFORM_INDEPENDENT
    if b is not None:
        if b == (2, 3 * units) and kind == "gru":
            notes.append("reset_after=True: separate input/recurrent biases (cuDNN-style GRU)")
        elif b == (3 * units,) and kind == "gru":
            notes.append("reset_after=False: reset gate applied before the recurrent matmul")
        elif b == (2 * n * units,):
            cls, storage = "CuDNN" + cls, CUDNN_COMPATIBLE
            notes.append("input and recurrent biases stored separately (Keras CuDNN layer)")
        elif b != (n * units,):
            return None
    return DetectedCell(kind, f"Keras {cls}", storage, scope, k[0], units, tensors=tensors, notes=notes)


def _keras(by_name: dict[str, TensorInfo]) -> Iterable[DetectedCell]:
    """kernel / recurrent_kernel / bias triplets (TF2 checkpoints, legacy .h5)."""
    for scope in _scopes(by_name, "/recurrent_kernel"):
        tensors = {r: f"{scope}/{r}" for r in ("kernel", "recurrent_kernel", "bias") if f"{scope}/{r}" in by_name}
        cell = _keras_cell(scope, _shape(by_name, scope + "/kernel"), _shape(by_name, scope + "/recurrent_kernel"),
                           _shape(by_name, scope + "/bias"), tensors)
        if cell is not None:
            yield cell


def _keras3_vars(by_name: dict[str, TensorInfo]) -> Iterable[DetectedCell]:
    """Keras 3 files: `<layer>/cell/vars/{0,1,2}` = kernel, recurrent_kernel, bias."""
    for scope in _scopes(by_name, "/vars/1"):
        if not scope.endswith("cell"):
            continue
        tensors = {r: f"{scope}/vars/{i}" for i, r in enumerate(("kernel", "recurrent_kernel", "bias"))
                   if f"{scope}/vars/{i}" in by_name}
        cell = _keras_cell(scope, _shape(by_name, scope + "/vars/0"), _shape(by_name, scope + "/vars/1"),
                           _shape(by_name, scope + "/vars/2"), tensors)
        if cell is not None:
            yield cell
