"""Keras model files: `.keras` (Keras 3 zip) and legacy `.h5` (Keras 2 / tf.keras), read with h5py.

* `.keras`: a zip of `config.json` (the model config), `metadata.json` (keras_version) and
  `model.weights.h5`, where each layer's variables are `layers/<layer>/vars/<i>` and nested
  objects add path parts (`layers/bidirectional/forward_layer/cell/vars/0`). Keras 3
  `*.weights.h5` files have the same layout without the zip.
* legacy `.h5`: file attributes `model_config` (JSON) and `keras_version`; weights under
  `model_weights/<layer>/` listed, in `get_weights()` order, by the group's `weight_names`
  attribute (`lstm/lstm_cell/kernel:0`); `save_weights` files have them at the root.

Nothing is ever unpickled or evaluated. Zip members with unsafe paths or implausible sizes
are refused; the weights member is read into memory (never extracted to disk) with a byte
budget. HDF5 data must live inside the file: external storage, virtual datasets and
external links are refused, soft links are resolved here one hop at a time, and every
object is visited once (a file of hard links to hard links cannot make a walk exponential).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import FormatError, MissingTensorError, Tf2rtError, UnsupportedError
from ..limits import (MAX_HDF5_DEPTH, MAX_HDF5_OBJECTS, MAX_JSON_DEPTH, MAX_LINK_HOPS, MAX_RATIO, ResourceLimitError,
                      check_bytes, check_elements, max_bytes, regular_file)
from .base import OPTIMIZER_SLOT, VARIABLE, TensorInfo, WeightSource, missing_message
from .formats import ZIP_ERRORS

_MAX_JSON = 64 << 20  # config.json / metadata.json
_MAX_RATIO = MAX_RATIO  # deflate cannot expand more than ~1032:1
_CHUNK = 1 << 20
# Model weights (float arrays) deflate by ~1.1:1, sparse ones by far less than 100:1; a
# weights member claiming more is a bomb, refused before a byte of it is inflated.
_MAX_WEIGHTS_RATIO = 100
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Children of a Keras 3 layer group in get_weights() order; others follow sorted.
_CHILD_ORDER = ("forward_layer", "backward_layer", "cell")


def _h5py():
    from .._optional import require

    return require("h5py", "keras", "reading Keras .keras/.h5 files")


class KerasFile(WeightSource):
    """A Keras model or weights file; tensors are read lazily from its HDF5 weights."""

    format = "keras"

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._config: dict | None = None
        self._version = ""
        self._h5 = None
        self._h5_size = 0
        self._visited = 0
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------
    def _open(self) -> None:
        h5py = _h5py()
        regular_file(self.path, "Keras file")
        if _is_zip(self.path):
            weights = self._unzip()
            self._h5_size = len(weights.getbuffer())
            self.layout = "keras3"
        else:
            weights = self.path
            self._h5_size = os.path.getsize(self.path)
            self.layout = ""
        try:
            self._h5 = h5py.File(weights, "r")
        except (OSError, ValueError, RuntimeError) as exc:
            raise FormatError(f"{self.path}: not a readable HDF5 file: {exc}") from None
        try:
            attrs = self._h5.attrs
            if not self.layout:
                if "model_config" in attrs or "model_weights" in self._h5 or "layer_names" in attrs:
                    self.layout = "legacy"
                elif "layers" in self._h5:
                    self.layout = "keras3"
                else:
                    raise FormatError(f"{self.path}: an HDF5 file without Keras model weights "
                                      "(no model_weights group, layer_names or layers group)")
            if self.layout == "legacy":
                if "model_config" in attrs:
                    self._config = _json(_text(attrs["model_config"]), self.path, "model_config")
                self._version = _text(attrs.get("keras_version", b""))
            self._infos = self._scan_keras3() if self.layout == "keras3" else self._scan_legacy()
        except Tf2rtError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, OSError, AttributeError, IndexError) as exc:
            raise FormatError(f"{self.path}: malformed Keras weights: {exc}") from None

    def _unzip(self) -> io.BytesIO:
        try:
            zf = zipfile.ZipFile(self.path)
        except ZIP_ERRORS as exc:
            raise FormatError(f"{self.path}: not a readable .keras (zip) file: {exc}") from None
        with zf:
            archive = os.path.getsize(self.path)
            members = {}
            for zi in zf.infolist():
                name = zi.filename
                if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name:
                    raise FormatError(f"{self.path}: refusing zip member with an unsafe path {name!r}")
                limit = archive if zi.compress_type == zipfile.ZIP_STORED else archive * _MAX_RATIO
                if zi.file_size > limit or _bomb(zi):
                    raise ResourceLimitError(f"{self.path}: zip member {name!r} claims {zi.file_size} bytes "
                                             f"from {zi.compress_size} compressed, more than the archive can "
                                             "hold (a zip bomb or a damaged file)")
                members[name] = zi
            for need in ("config.json", "model.weights.h5"):
                if need not in members:
                    raise FormatError(f"{self.path}: a zip without {need}; not a Keras 3 .keras file")
            self._config = _json(self._member(zf, members["config.json"], _MAX_JSON).decode("utf-8", "replace"),
                                 self.path, "config.json")
            if "metadata.json" in members:
                meta = _json(self._member(zf, members["metadata.json"], _MAX_JSON).decode("utf-8", "replace"),
                             self.path, "metadata.json")
                self._version = str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
            # Read in memory, never extracted: nothing lands on disk, and only this member is read.
            zi = members["model.weights.h5"]
            check_bytes(zi.file_size, f"{self.path}: model.weights.h5")
            if zi.compress_type != zipfile.ZIP_STORED and zi.file_size > _MAX_WEIGHTS_RATIO * zi.compress_size + _CHUNK:
                raise ResourceLimitError(
                    f"{self.path}: model.weights.h5 claims {zi.file_size} bytes from {zi.compress_size} compressed "
                    f"(over {_MAX_WEIGHTS_RATIO}:1, more than model weights compress); a zip bomb? If the weights "
                    "really are mostly zeros, re-save the archive uncompressed (zip -0)")
            return io.BytesIO(self._member(zf, zi, max_bytes(), magic=_HDF5_MAGIC))

    def _member(self, zf: zipfile.ZipFile, zi: zipfile.ZipInfo, limit: int, magic: bytes = b"") -> bytes:
        """A member's bytes, streamed with a budget: stops as soon as more come out than declared
        (and, given `magic`, after the first chunk when it does not start so)."""
        if zi.file_size > limit:
            raise ResourceLimitError(f"{self.path}: {zi.filename} is implausibly large ({zi.file_size} bytes)")
        budget = min(zi.file_size, limit)
        out = io.BytesIO()
        try:
            with zf.open(zi) as src:
                while True:
                    chunk = src.read(min(_CHUNK, budget + 1 - out.tell()))
                    if not chunk:
                        break
                    if magic and out.tell() == 0 and not chunk.startswith(magic):
                        raise FormatError(f"{self.path}: {zi.filename} is not an HDF5 file")
                    out.write(chunk)
                    if out.tell() > budget:
                        raise ResourceLimitError(f"{self.path}: zip member {zi.filename} expands beyond its "
                                                 f"declared {zi.file_size} bytes; the archive is hostile or damaged")
        except ZIP_ERRORS as exc:
            raise FormatError(f"{self.path}: corrupted zip member {zi.filename}: {exc}") from None
        if out.tell() != zi.file_size:
            raise FormatError(f"{self.path}: zip member {zi.filename} holds {out.tell()} bytes, "
                              f"not the declared {zi.file_size} (truncated or damaged)")
        return out.getvalue()

    # -- safe HDF5 navigation ----------------------------------------------------------
    def _get(self, base, path: str, hops: int = 0):
        """`base[path]` for paths inside this file only: each link is checked before it is
        followed; external links and user-defined links are refused, soft links resolved here."""
        h5py = _h5py()
        if hops > MAX_LINK_HOPS:
            raise FormatError(f"{self.path}: more than {MAX_LINK_HOPS} soft links chained at {path!r}")
        obj = self._h5 if path.startswith("/") else base
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if not isinstance(obj, h5py.Group):
                raise KeyError(f"{path!r}: {obj.name!r} is not a group")
            try:
                link = obj.get(part, getlink=True)
            except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
                raise FormatError(f"{self.path}: unreadable HDF5 link {part!r} in {obj.name!r}: {exc}") from None
            if link is None:
                raise KeyError(f"{path!r}: no {part!r} in {obj.name!r}")
            if isinstance(link, h5py.HardLink):
                obj = obj[part]
            elif isinstance(link, h5py.SoftLink):
                obj = self._get(obj, link.path, hops + 1)
            elif isinstance(link, h5py.ExternalLink):
                raise FormatError(f"{self.path}: {obj.name.rstrip('/')}/{part} is an external link to "
                                  f"{link.filename!r}; tf2rt reads only data stored inside the file")
            else:
                raise FormatError(f"{self.path}: {obj.name.rstrip('/')}/{part} is a user-defined HDF5 link; "
                                  "tf2rt reads only data stored inside the file")
        if isinstance(obj, h5py.Dataset):
            self._check_storage(obj)
        return obj

    def _check_storage(self, ds) -> None:
        if ds.is_virtual or ds.external:
            kind = "a virtual dataset (VDS)" if ds.is_virtual else "stored in external files"
            raise FormatError(f"{self.path}: dataset {ds.name!r} is {kind}; tf2rt reads only data stored "
                              "inside the file (re-save the model with Keras)")

    def _visit(self, obj, seen: set, depth: int) -> bool:
        """True the first time an HDF5 object is met (by identity, whatever the path)."""
        if depth > MAX_HDF5_DEPTH:
            raise ResourceLimitError(f"{self.path}: HDF5 groups nested deeper than {MAX_HDF5_DEPTH}; "
                                     "the file is hostile or damaged")
        if obj.id in seen:
            return False
        seen.add(obj.id)
        self._visited += 1
        if self._visited > MAX_HDF5_OBJECTS:
            raise ResourceLimitError(f"{self.path}: more than {MAX_HDF5_OBJECTS} HDF5 objects; "
                                     "the file is hostile or damaged")
        return True

    # -- listing ---------------------------------------------------------------------
    def _scan_keras3(self) -> list[TensorInfo]:
        h5py = _h5py()
        infos: list[TensorInfo] = []
        self._layers: dict[str, str] = {}  # layer name/path -> h5 group path
        # Keras 3 stores layers under class-based names (lstm, lstm_1, ...); the config
        # gives them back their layer names, in the same order.
        names = _keras3_layer_names(self._config) if isinstance(self._config, dict) else {}

        seen: set = set()

        def walk(group, name_parts: list[str], kind: str, depth: int) -> None:
            for child in _ordered_children(group):
                obj = self._get(group, child)
                if isinstance(obj, h5py.Group) and not self._visit(obj, seen, depth):
                    continue
                if child == "vars" and isinstance(obj, h5py.Group):
                    for idx in sorted(obj, key=_int_key):
                        ds = self._get(obj, idx)
                        if isinstance(ds, h5py.Dataset) and self._visit(ds, seen, depth):
                            infos.append(self._info("/".join(name_parts + ["vars", idx]), ds, kind))
                elif child == "layers" and isinstance(obj, h5py.Group):
                    for stored in obj:
                        sub = self._get(obj, stored)
                        if isinstance(sub, h5py.Group) and self._visit(sub, seen, depth + 1):
                            layer = names.get(sub.name, stored)
                            path = "/".join(name_parts + [layer])
                            self._layers.setdefault(path, sub.name)
                            self._layers.setdefault(layer, sub.name)
                            walk(sub, name_parts + [layer], kind, depth + 2)
                elif isinstance(obj, h5py.Group):
                    walk(obj, name_parts + [child],
                         OPTIMIZER_SLOT if child == "optimizer" and not name_parts else kind, depth + 1)

        walk(self._h5, [], VARIABLE, 0)
        # natural order, so vars/2 lists before vars/10
        return sorted(infos, key=lambda i: [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in i.name.split("/")])

    def _scan_legacy(self) -> list[TensorInfo]:
        h5py = _h5py()
        infos: list[TensorInfo] = []
        self._layers = {}
        root = self._get(self._h5, "model_weights") if "model_weights" in self._h5 else self._h5
        seen: set[str] = set()
        sections = [(root, VARIABLE)]
        if "optimizer_weights" in self._h5:
            sections.append((self._get(self._h5, "optimizer_weights"), OPTIMIZER_SLOT))
        for group, kind in sections:
            if not isinstance(group, h5py.Group):
                raise FormatError(f"{self.path}: {group.name!r} is not an HDF5 group")
            if kind == VARIABLE:
                layer_groups = [(str(n), self._get(group, str(n))) for n in _attr_list(group, "layer_names")]
            else:
                layer_groups = [("", group)]
            for layer, lg in layer_groups:
                if not isinstance(lg, h5py.Group):
                    raise FormatError(f"{self.path}: layer {layer!r} is not an HDF5 group")
                if layer:
                    self._layers[layer] = lg.name
                for wn in _attr_list(lg, "weight_names"):
                    ds = self._get(lg, wn)
                    self._visited += 1
                    if self._visited > MAX_HDF5_OBJECTS:
                        raise ResourceLimitError(f"{self.path}: more than {MAX_HDF5_OBJECTS} weights listed; "
                                                 "the file is hostile or damaged")
                    if not isinstance(ds, h5py.Dataset):
                        raise FormatError(f"{self.path}: weight {wn!r} is not a dataset")
                    name = wn[:-2] if wn.endswith(":0") else wn
                    if name in seen:
                        name = f"{layer}/{name}" if layer else ds.name.lstrip("/")
                    seen.add(name)
                    infos.append(self._info(name, ds, kind))
        return sorted(infos, key=lambda i: i.name)

    def _info(self, name: str, ds, kind: str) -> TensorInfo:
        dtype = ds.dtype
        if dtype.kind not in "fiubc" or dtype.fields is not None:
            raise UnsupportedError(f"{self.path}: weight {name!r} has non-numeric dtype {dtype}")
        self._check_storage(ds)
        shape = tuple(int(d) for d in ds.shape) if ds.shape is not None else ()
        nbytes = check_elements(shape, dtype.itemsize, f"{self.path}: weight {name!r}") * dtype.itemsize
        if nbytes > max(self._h5_size, 1) * _MAX_RATIO:
            raise ResourceLimitError(f"{self.path}: weight {name!r} claims {nbytes} bytes, more than the file can hold")
        return TensorInfo(name, dtype.newbyteorder("="), shape, kind=kind, key=ds.name.lstrip("/"),
                          extra={"h5": ds.name})

    def infos(self) -> list[TensorInfo]:
        return self._infos

    def _read(self, info: TensorInfo) -> np.ndarray:
        try:
            arr = self._get(self._h5, info.extra["h5"])[()]
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise FormatError(f"{self.path}: cannot read weight {info.name!r}: {exc}") from None
        arr = np.asarray(arr)
        if arr.shape != info.shape:
            raise FormatError(f"{self.path}: weight {info.name!r} read with an unexpected shape")
        return arr.astype(arr.dtype.newbyteorder("="), copy=False)

    # -- Keras-specific --------------------------------------------------------------
    def model_config(self) -> dict:
        """The model config: {"class_name": ..., "config": {...}}."""
        if self._config is None:
            raise FormatError(f"{self.path} holds weights only (saved with save_weights); it has no "
                              "model config. Save the whole model (model.save) instead.")
        _check_config(self._config, self.path, "the model config")
        return self._config

    def keras_version(self) -> str:
        """The Keras version that wrote the file ("" when not recorded)."""
        return self._version

    def layer_names(self) -> list[str]:
        """Names (or nested paths) of the layers that hold weights."""
        # every group above a weight, so the check is linear in the file, not layers x weights
        above = set()
        for info in self._infos:
            parts = info.extra["h5"].rstrip("/").split("/")
            above.update("/".join(parts[:k]) for k in range(1, len(parts)))
        return [n for n, g in self._layers.items() if g.rstrip("/") in above]

    def layer_weights(self, layer_name: str) -> list[np.ndarray]:
        """A layer's arrays in the order Keras' `layer.get_weights()` returns them."""
        group = self._layers.get(layer_name)
        if group is None:
            raise MissingTensorError(missing_message([layer_name], list(self._layers), self.path))
        prefix = group.rstrip("/") + "/"
        ordered = [i for i in self._order() if i.extra["h5"].startswith(prefix)]
        return [self._read(i) for i in ordered]

    def _order(self) -> list[TensorInfo]:
        """Infos in file order (get_weights order), not name order (computed once)."""
        if getattr(self, "_ordered", None) is None:
            self._ordered = self._file_order()
        return self._ordered

    def _file_order(self) -> list[TensorInfo]:
        if self.layout == "legacy":
            index = {i.extra["h5"]: n for n, i in enumerate(self._infos)}
            order = []
            root = self._get(self._h5, "model_weights") if "model_weights" in self._h5 else self._h5
            for layer in _attr_list(root, "layer_names"):
                lg = self._get(root, str(layer))
                for wn in _attr_list(lg, "weight_names"):
                    order.append(self._infos[index[self._get(lg, wn).name]])
            return order
        return sorted(self._infos, key=lambda i: _keras3_sort_key(i.extra["h5"]))

    def close(self) -> None:
        if self._h5 is not None:
            try:
                self._h5.close()
            except Exception:  # closing a half-opened file must not mask the real error
                pass
            self._h5 = None


def open_keras(path: str | Path) -> KerasFile:
    """Open a `.keras`, legacy `.h5` or `*.weights.h5` Keras file."""
    return KerasFile(path)


def snake_case(name: str) -> str:
    """Keras 3's object name for a class (`SimpleRNN` -> `simple_rnn`)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_layer_names(config: dict, prefix: str = "/layers") -> dict[str, str]:
    """h5 group path -> layer name, rebuilt from the model config (model.layers order)."""
    out: dict[str, str] = {}
    if not isinstance(config, dict):
        return out
    layers = config.get("config", {}).get("layers") if isinstance(config.get("config"), dict) else None
    if not isinstance(layers, list):
        return out
    used: dict[str, int] = {}
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
            continue
        stored = snake_case(layer["class_name"])
        if stored in used:
            used[stored] += 1
            stored = f"{stored}_{used[stored]}"
        else:
            used[stored] = 0
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        path = f"{prefix}/{stored}"
        if isinstance(cfg.get("name"), str):
            out[path] = cfg["name"]
        if isinstance(cfg.get("layers"), list):  # a nested model
            out.update(_keras3_layer_names(layer, path + "/layers"))
    return out


def _ordered_children(group) -> list[str]:
    names = list(group)
    first = [n for n in ("vars",) + _CHILD_ORDER if n in names]
    return first + sorted(n for n in names if n not in first)


def _keras3_sort_key(h5path: str) -> tuple:
    key = []
    for part in h5path.strip("/").split("/"):
        if part == "vars":
            key.append((0, 0, ""))
        elif part in _CHILD_ORDER:
            key.append((1, _CHILD_ORDER.index(part), ""))
        elif part.isdigit():
            key.append((2, int(part), ""))
        else:
            key.append((3, 0, part))
    return tuple(key)


def _int_key(s: str) -> tuple[int, str]:
    return (int(s), "") if s.isdigit() else (1 << 62, s)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def _bomb(zi: zipfile.ZipInfo) -> bool:
    """True when a member's declared sizes are impossible for its compression method."""
    if zi.compress_type == zipfile.ZIP_STORED:
        return zi.file_size != zi.compress_size
    return zi.file_size > _MAX_RATIO * zi.compress_size + (1 << 16)


def _check_config(config, path: Path, what: str) -> None:
    """The model config's outer shape: {"class_name": str, "config": {...} or [...]}."""
    if not isinstance(config, dict):
        raise FormatError(f"{path}: {what} is a JSON {type(config).__name__}, not an object; the file is damaged")
    if not isinstance(config.get("class_name"), str):
        raise FormatError(f"{path}: {what} has no class_name string; the file is damaged")
    if not isinstance(config.get("config", {}), (dict, list)):
        raise FormatError(f"{path}: {what}'s config is a JSON {type(config['config']).__name__}, "
                          "not an object; the file is damaged")


def _json(text: str, path: Path, what: str):
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{path}: {what} is not valid JSON: {exc}") from None
    if _depth(value) > MAX_JSON_DEPTH:  # config walkers recurse; keep them far from Python's limit
        raise ResourceLimitError(f"{path}: {what} nests deeper than {MAX_JSON_DEPTH} levels; the file is "
                                 "hostile or damaged")
    return value


def _depth(value) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def _attr_list(group, name: str) -> list[str]:
    """A string-list attribute, joined from Keras' chunks (`name0`, `name1`, ...) if split."""
    attrs = group.attrs
    if name in attrs:
        values = list(np.atleast_1d(attrs[name]))
    else:
        values, i = [], 0
        while f"{name}{i}" in attrs:
            values.extend(np.atleast_1d(attrs[f"{name}{i}"]))
            i += 1
    return [_text(v) for v in values]


def _is_zip(path: Path) -> bool:
    regular_file(path, "Keras file")
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK"
    except OSError as exc:
        raise FormatError(f"cannot open {path}: {exc.strerror}") from None
