"""The public weight API: open, load and dump weights in any supported format.

    >>> from tf2rt.weights.api import load_weights, dump_weights
    >>> w = load_weights("model.ckpt-100", names=["softmax/softmax_w"])
    >>> dump_weights("model.ckpt-100", "model.wts2")

Formats are detected from file contents (see `tf2rt.weights.formats`). By default only
model variables are loaded or dumped; optimizer slots are added with
`include_optimizer=True`, and bookkeeping tensors (global_step, save_counter, the TF2
object graph) only when asked for by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..errors import FormatError, MissingTensorError
from ..limits import regular_file
from ..progress import Progress
from .base import OPTIMIZER_SLOT, VARIABLE, TensorInfo, WeightSource, Weights, missing_message
from .formats import WRITABLE, TensorMap, detect_format, format_for_suffix, get_format



def open_weights(path: str | Path, format: str | None = None) -> WeightSource:
    """Open a weight file lazily; `format` is detected from the contents when None."""
    name = format or detect_format(path)
    p = Path(path)
    if p.exists() and not p.is_dir():
        regular_file(p, "weight file")  # FIFOs and devices never end; checked for every format
    return get_format(name).open(path)


def select(src: WeightSource, names: Iterable[str] | None = None,
           include_optimizer: bool = False) -> list[tuple[str, TensorInfo]]:
    """(requested name, info) for `names`, or for every variable (and slot) when None.

    Raises MissingTensorError listing every missing name with close matches.
    """
    if names is None:
        kinds = (VARIABLE, OPTIMIZER_SLOT) if include_optimizer else (VARIABLE,)
        return [(i.name, i) for i in src.infos() if i.kind in kinds]
    found, missing = [], []
    for name in names:
        info = _lookup(src, name)
        if info is None:
            missing.append(name)
        else:
            found.append((name, info))
    if missing:
        available = [i.name for i in src.infos()]
        raise MissingTensorError(missing_message(missing, available, src.path))
    return found


def _lookup(src: WeightSource, name: str) -> TensorInfo | None:
    if name in src:
        return src.info(name)
    # .wts files store checkpoint names with '/' -> '_'; accept the original spelling too.
    if getattr(src, "format", "").startswith("wts") and name.replace("/", "_") in src:
        return src.info(name.replace("/", "_"))
    return None


def _read_all(src: WeightSource, chosen: list[tuple[str, TensorInfo]]) -> dict[str, Weights]:
    total = sum(info.nbytes for _, info in chosen)
    out: dict[str, Weights] = {}
    with Progress(total, f"reading {src.path.name}", "B") as bar:
        for key, info in chosen:
            out[key] = Weights(info.name, src._read(info))
            bar.update(info.nbytes)
    return out


def load_weights(
    path: str | Path | WeightSource,
    names: Iterable[str] | None = None,
    include_optimizer: bool = False,
    format: str | None = None,
) -> dict[str, Weights]:
    """Read tensors into memory: name -> Weights (keyed by the names asked for).

    With `names=None` every model variable is read (plus optimizer slots when
    `include_optimizer`). A name missing from the file raises MissingTensorError listing
    close matches.
    """
    if isinstance(path, WeightSource):
        return _read_all(path, select(path, names, include_optimizer))
    with open_weights(path, format) as src:
        return _read_all(src, select(src, names, include_optimizer))


class SourceTensors(TensorMap):
    """Selected tensors of an open source, read one at a time as a writer asks for them."""

    def __init__(self, src: WeightSource, chosen: list[tuple[str, TensorInfo]]):
        super().__init__()
        self._src = src
        # output name = readable name (TF1 variable names for TF2 object-based keys)
        self._infos = {info.name: info for _, info in chosen}

    def names(self) -> list[str]:
        return sorted(self._infos)

    def spec(self, name: str) -> tuple[np.dtype | str, tuple[int, ...]]:
        info = self._infos[name]
        return info.dtype, tuple(info.shape)

    def array(self, name: str) -> np.ndarray:
        return self._src._read(self._infos[name])


def dump_weights(
    src: str | Path | WeightSource | Mapping[str, np.ndarray],
    dst: str | Path,
    format: str | None = None,
    names: Iterable[str] | None = None,
    include_optimizer: bool = False,
    keep_names: bool = False,
    convert: bool = False,
    exclude: Iterable[str] = (),
) -> Path:
    """Write the tensors of `src` (a weight file, an open source or a dict) to `dst`.

    `format` is one of wts (v1), wts2, npz, safetensors; when None it comes from `dst`'s
    suffix. `keep_names` keeps `/` in .wts names (dumpTFWts maps them to `_`); `convert`
    lets .wts2 store dtypes TensorRT lacks as float32/int32; `exclude` leaves tensors out.
    Tensors are read one at a time, so a dump needs memory for the largest tensor only.
    """
    dst = Path(dst)
    if not isinstance(src, Mapping):
        from ..outputs import check_not_input, check_writable, input_files

        check_writable(dst)  # refuse a bad output path before reading anything
        check_not_input(dst, input_files(src.path if isinstance(src, WeightSource) else src))  # every file of a checkpoint
    fmt = format or format_for_suffix(dst)
    if fmt is None:
        raise FormatError(
            f"cannot tell the output format from {dst.name!r}; pass format= (CLI: --format) "
            f"one of {', '.join(WRITABLE)}, or use a suffix .wts, .wts2, .npz, .safetensors"
        )
    writer = get_format(fmt)
    options: dict[str, object] = {}
    if fmt in ("wts", "wts2"):
        options = {"keep_names": keep_names, "convert": convert}
    exclude = set(exclude)
    if isinstance(src, Mapping):
        wanted = list(src) if names is None else list(names)
        missing = [n for n in wanted + sorted(exclude) if n not in src]
        if missing:
            raise MissingTensorError(missing_message(missing, list(src), "the given tensors"))
        return writer.write(TensorMap({n: src[n] for n in wanted if n not in exclude}), dst, **options)
    src_path = src.path if isinstance(src, WeightSource) else Path(src)
    if isinstance(src, WeightSource):
        return writer.write(SourceTensors(src, _chosen(src, names, include_optimizer, exclude)), dst, **options)
    with open_weights(src) as opened:
        return writer.write(SourceTensors(opened, _chosen(opened, names, include_optimizer, exclude)), dst, **options)


def _chosen(src: WeightSource, names, include_optimizer: bool, exclude: set[str]) -> list[tuple[str, TensorInfo]]:
    chosen = select(src, names, include_optimizer)
    if exclude:
        select(src, sorted(exclude))  # a misspelt exclusion is an error, not a silent no-op
        drop = {_lookup(src, n).name for n in exclude}
        chosen = [(k, i) for k, i in chosen if i.name not in drop]
    return chosen


def _write_wts1(weights, path, keep_names: bool = False, convert: bool = False) -> Path:
    from .wts import write_wts

    return write_wts(weights, path, version=1, keep_names=keep_names)


def _write_wts2(weights, path, keep_names: bool = False, convert: bool = False) -> Path:
    from .wts import write_wts

    return write_wts(weights, path, version=2, keep_names=keep_names, convert=convert)
