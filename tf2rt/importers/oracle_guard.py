"""What a model file may make TensorFlow/Keras do when `compare --against tf:PATH` runs it.

Loading a model with TensorFlow is running it: a Keras `Lambda` layer is Python bytecode,
a graph may hold ops that read or write files (ReadFile, WriteFile, SaveV2, readers,
summary writers) or call back into Python (PyFunc). Unless the user passes
`--trust-model`, the model's configuration / graph is inspected *before* TensorFlow sees
it, and such models are refused. Graphs are checked on the ops that will actually run: the
closure of the fetched tensors (and the restore op for TF1 checkpoints), through every
function they call.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterable

from ..errors import Tf2rtError
from ..limits import MAX_JSON_DEPTH

TRUST_HINT = "pass --trust-model only if you trust where the file came from"

# Ops that run Python, touch files or talk to other processes.
DENIED_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc", "ReadFile", "WriteFile", "MatchingFiles",
              "Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints", "ImmutableConst", "LoadAndRemapMatrix",
              "PrintV2", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "RemoteCall",
              "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteRawProtoSummary", "FlushSummaryWriter",
              "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord"}
DENIED_PARTS = ("Reader", "Dataset", "Summary", "Debug", "Collective", "Send", "Recv", "Restore")
RESTORE_OPS = {"RestoreV2", "Restore", "RestoreSlice"}
MAX_CONFIG_BYTES = 64 << 20


class UntrustedModelError(Tf2rtError):
    """The model carries code or ops that would run with the user's rights."""


def _denied(op: str, allow_restore: bool) -> bool:
    if op in DENIED_OPS:
        return True
    if allow_restore and op in RESTORE_OPS:
        return False
    return any(part in op for part in DENIED_PARTS)


# -- Keras configs --------------------------------------------------------------------------------
_KERAS_MODULES = ("keras", "tf_keras", "tensorflow", "builtins", "numpy")


def _config_problem(config: Any) -> str | None:
    """What in a Keras config would run code from the file (or import foreign modules), if anything."""
    stack = [(config, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH * 4:
            return "a configuration nested too deeply"
        if isinstance(item, dict):
            cls = item.get("class_name")
            if cls in ("Lambda", "__lambda__"):
                name = (item.get("config") or {}).get("name") if isinstance(item.get("config"), dict) else None
                return f"a Lambda layer{f' {name!r}' if name else ''} (Python bytecode)"
            if item.get("function_type") == "lambda" or item.get("output_shape_type") == "lambda":
                return "a layer whose config carries Python bytecode"
            module = item.get("module")
            if isinstance(module, str) and module.split(".")[0] not in _KERAS_MODULES:
                return f"a custom object from Python module {module[:80]!r}"
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


def _parse_config(text: str | bytes, where: str) -> Any:
    if len(text) > MAX_CONFIG_BYTES:
        raise UntrustedModelError(f"{where}: the model configuration is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return json.loads(text)
    except RecursionError:
        raise UntrustedModelError(f"{where}: the model configuration is nested too deeply") from None
    except ValueError as exc:
        raise UntrustedModelError(f"{where}: the model configuration is not valid JSON ({exc})") from None


def keras_config(path: Path) -> Any:
    """The model config of a .keras (zip: config.json) or legacy .h5 (attribute model_config)."""
    where = str(path)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo("config.json")
                if info.file_size > MAX_CONFIG_BYTES:
                    raise UntrustedModelError(f"{where}: config.json is larger than {MAX_CONFIG_BYTES} bytes")
                with zf.open(info) as f:
                    return _parse_config(f.read(MAX_CONFIG_BYTES + 1), where)
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise UntrustedModelError(f"{where}: cannot read the model configuration ({exc})") from None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise UntrustedModelError(f"{where}: cannot read the model configuration ({exc})") from None
    if raw is None:
        raise UntrustedModelError(f"{where}: no model configuration (a weights-only file cannot be run)")
    if hasattr(raw, "tobytes") and not isinstance(raw, (bytes, str)):
        raw = raw.tobytes()
    return _parse_config(raw, where)


def check_keras(path: Path) -> None:
    """UntrustedModelError if the Keras file's config would run code carried by the file."""
    problem = _config_problem(keras_config(path))
    if problem:
        raise UntrustedModelError(f"{path} holds {problem}, which Keras would run as Python code when "
                                  f"loading it; refusing to load it ({TRUST_HINT})")


# -- TensorFlow graphs ----------------------------------------------------------------------------
def _node_name(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def _called(node: Any) -> Iterable[str]:
    """Names of functions a NodeDef calls (its op, or func / list-of-func attributes)."""
    yield node.op
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        if value.HasField("list"):
            for fn in value.list.func:
                yield fn.name


def check_graph(graph_def: Any, roots: Iterable[str], where: str, allow_restore: bool = False) -> None:
    """UntrustedModelError if any op that running `roots` would execute is in the deny list.

    `roots`: node names (or tensor names) that will be fetched or run."""
    nodes = {n.name: n for n in graph_def.node}
    functions = {f.signature.name: f for f in graph_def.library.function}
    seen: set[str] = set()
    seen_fn: set[str] = set()
    stack = [_node_name(r) for r in roots]
    pending_fn: list[str] = []
    while stack or pending_fn:
        if stack:
            name = stack.pop()
            if name in seen or name not in nodes:
                continue
            seen.add(name)
            node = nodes[name]
            _check_node(node, where, allow_restore)
            stack.extend(_node_name(i) for i in node.input)
            pending_fn.extend(c for c in _called(node) if c in functions)
            continue
        fname = pending_fn.pop()
        if fname in seen_fn:
            continue
        seen_fn.add(fname)
        for node in functions[fname].node_def:
            _check_node(node, where, allow_restore)
            pending_fn.extend(c for c in _called(node) if c in functions)


def _check_node(node: Any, where: str, allow_restore: bool) -> None:
    if _denied(node.op, allow_restore):
        raise UntrustedModelError(f"{where}: the graph runs op {node.op!r} (node {node.name[:80]!r}), which can "
                                  "run Python code or read/write files with your rights; refusing to run it "
                                  f"({TRUST_HINT})")


def check_restore_inputs(graph_def: Any, filename_tensor: str, where: str) -> None:
    """Restore ops may only read the checkpoint tf2rt names (the saver's filename tensor)."""
    want = _node_name(filename_tensor)
    for node in graph_def.node:
        if node.op in RESTORE_OPS and (not node.input or _node_name(node.input[0]) != want):
            raise UntrustedModelError(f"{where}: restore op {node.name[:80]!r} reads a file other than the "
                                      f"checkpoint; refusing to run it ({TRUST_HINT})")
