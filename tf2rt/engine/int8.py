"""int8 post-training quantization of an fp32 engine into a QDQ ONNX model.

TensorRT's explicit-quantization form: every Conv / Gemm / MatMul reads its activation
through QuantizeLinear -> DequantizeLinear with a calibrated per-tensor scale (symmetric
int8, zero point 0), its weights as int8 with one scale per output channel through
DequantizeLinear, and its bias as int32 with scale = activation scale x weight scale.
onnxruntime runs such a model (fusing the QDQ pairs into integer kernels) and TensorRT
parses it as an explicitly quantized network. Calibration is max-abs over a calibration
set (a folder of images or an .npz / array of preprocessed inputs).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import Tf2rtError, UnsupportedError

QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")


def load_calibration(source: Any, engine: Any, limit: int = 512) -> np.ndarray:
    """Calibration inputs for the engine's (single) input: an array or an .npz (its first array, or
    the one named like the input). For a folder of images use
    tf2rt.apps.classify.calibration_images(folder, engine, preprocessing)."""
    spec = engine.inputs[0]
    if isinstance(source, np.ndarray):
        x = source
    else:
        p = Path(source)
        if p.is_dir():
            raise Tf2rtError(f"{p} is a folder: turn its images into calibration arrays first with "
                             "tf2rt.apps.classify.calibration_images(folder, engine, preprocessing) "
                             "(`tf2rt classify --calibration DIR` does)")
        elif p.suffix == ".npz":
            from .inputs import load_npz  # headers checked against the caps before reading

            z = load_npz(p)
            key = spec.name if spec.name in z else (next(iter(z)) if z else None)
            if key is None:
                raise Tf2rtError(f"{p}: no arrays in the calibration file")
            x = z[key]
        else:
            raise Tf2rtError(f"{p}: calibration data must be a folder of images or an .npz file")
    x = np.asarray(x, dtype=np.float32)[:limit]
    want = [d for d in spec.shape[1:]]
    if x.ndim != len(spec.shape) or any(w is not None and w != d for w, d in zip(want, x.shape[1:])):
        raise Tf2rtError(f"calibration data has shape {x.shape}; the engine input {spec.name} is {spec.shape}")
    if len(x) == 0:
        raise Tf2rtError("the calibration set is empty")
    return x


def _targets(model: Any) -> list[tuple[Any, str, str, Optional[str], int]]:
    """(node, activation, weight initializer, bias initializer or None, weight channel axis).
    Nodes inside Loop/If bodies stay float, and so do weights those bodies read."""
    from .optimize import nested_reads

    inner = nested_reads(model.graph)
    inits = {t.name for t in model.graph.initializer} - inner
    out = []
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OPS or len(node.input) < 2 or node.input[1] not in inits:
            continue
        if node.input[0] in inits:
            continue
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Gemm" and (attrs.get("transA") and attrs["transA"].i):
            continue
        axis = 0
        if node.op_type == "MatMul":
            axis = 1  # weight [K, N]: one scale per output column
        elif node.op_type == "Gemm":
            axis = 0 if (attrs.get("transB") and attrs["transB"].i) else 1
        bias = node.input[2] if len(node.input) > 2 and node.input[2] in inits else None
        if node.op_type == "Gemm" and bias is not None:
            from onnx import numpy_helper

            b = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == bias)
            if b.ndim != 1:
                bias = None  # a broadcast bias that is not per output: keep it (and this Gemm) in float
                continue
        out.append((node, node.input[0], node.input[1], bias, axis))
    return out


def calibrate(model: Any, activations: Sequence[str], inputs: np.ndarray, input_name: str,
              batch_size: int = 32) -> dict[str, float]:
    """Max |x| of every named activation over the calibration inputs (onnxruntime, fp32)."""
    import onnx
    import onnxruntime as ort

    probe = copy.deepcopy(model)
    have = {o.name for o in probe.graph.output}
    for name in activations:
        if name not in have:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor observable
    from .external import refuse_external_data

    refuse_external_data(probe, "int8 calibration")  # onnxruntime must never resolve a path the model names
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    amax = {name: 0.0 for name in activations}
    for i in range(0, len(inputs), batch_size):
        outs = sess.run(list(activations), {input_name: inputs[i:i + batch_size]})
        for name, v in zip(activations, outs):
            amax[name] = max(amax[name], float(np.abs(v).max()) if v.size else 0.0)
    return amax


def quantize(engine: Any, calibration: Any, limit: int = 512) -> Any:
    """An int8 (QDQ) Engine from an fp32 Engine and a calibration set: an array or .npz of model
    inputs (see load_calibration; tf2rt.apps.classify.calibration_images makes one from images)."""
    import onnx
    from onnx import helper, numpy_helper

    from .engine import Engine, attach_metadata

    if engine.metadata.get("precision", "fp32") != "fp32":
        raise UnsupportedError(f"int8 quantization starts from an fp32 engine, this one is "
                               f"{engine.metadata.get('precision')}")
    if len(engine.inputs) != 1:
        raise UnsupportedError("int8 calibration supports engines with one input")
    x = load_calibration(calibration, engine, limit)
    model = copy.deepcopy(engine.onnx)
    targets = _targets(model)
    if not targets:
        raise UnsupportedError("the engine has no Conv/Gemm/MatMul layers with constant weights to quantize")
    graph_outputs = {o.name for o in model.graph.output}
    # activations read by quantized layers, and the outputs those layers write: with both
    # quantized, each layer forms a complete DQ -> op -> Q unit that runs as an integer kernel
    acts = sorted({t[1] for t in targets} | {t[0].output[0] for t in targets if t[0].output[0] not in graph_outputs})
    amax = calibrate(model, acts, x, engine.inputs[0].name)
    inits = {t.name: t for t in model.graph.initializer}
    new_inits: list[Any] = []
    dq_nodes: list[Any] = []
    act_dq: dict[str, str] = {}
    for name in acts:
        scale = max(amax[name], 1e-8) / 127.0
        s, z = f"{name}/act_scale", f"{name}/act_zero"
        new_inits += [numpy_helper.from_array(np.array(scale, np.float32), s),
                      numpy_helper.from_array(np.array(0, np.int8), z)]
        q, dq = f"{name}/quantized", f"{name}/dequantized"
        dq_nodes += [helper.make_node("QuantizeLinear", [name, s, z], [q], name=f"{name}/quantize"),
                     helper.make_node("DequantizeLinear", [q, s, z], [dq], name=f"{name}/dequantize")]
        act_dq[name] = dq
    done: set[str] = set()
    for node, act, wname, bname, axis in targets:
        if wname in done:  # a weight shared by several nodes is quantized once
            node.input[1] = f"{wname}/dequantized"
            continue
        done.add(wname)
        w = numpy_helper.to_array(inits[wname]).astype(np.float32)
        reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
        w_scale = np.maximum(np.abs(w).max(axis=reduce_axes), 1e-12) / 127.0
        shape = [1] * w.ndim
        shape[axis] = -1
        wq = np.clip(np.rint(w / w_scale.reshape(shape)), -127, 127).astype(np.int8)
        new_inits += [numpy_helper.from_array(wq, f"{wname}/int8"),
                      numpy_helper.from_array(w_scale.astype(np.float32), f"{wname}/scale"),
                      numpy_helper.from_array(np.zeros(w_scale.shape, np.int8), f"{wname}/zero")]
        dq_nodes.append(helper.make_node("DequantizeLinear", [f"{wname}/int8", f"{wname}/scale", f"{wname}/zero"],
                                         [f"{wname}/dequantized"], name=f"{wname}/dequantize", axis=axis))
        node.input[1] = f"{wname}/dequantized"
        if bname is not None and bname not in done:
            done.add(bname)
            b = numpy_helper.to_array(inits[bname]).astype(np.float64)
            b_scale = (max(amax[act], 1e-8) / 127.0) * w_scale.astype(np.float64)
            if b.shape == b_scale.shape:
                bq = np.clip(np.rint(b / b_scale), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
                new_inits += [numpy_helper.from_array(bq, f"{bname}/int32"),
                              numpy_helper.from_array(b_scale.astype(np.float32), f"{bname}/scale"),
                              numpy_helper.from_array(np.zeros(b_scale.shape, np.int32), f"{bname}/zero")]
                dq_nodes.append(helper.make_node("DequantizeLinear",
                                                 [f"{bname}/int32", f"{bname}/scale", f"{bname}/zero"],
                                                 [f"{bname}/dequantized"], name=f"{bname}/dequantize", axis=0))
                node.input[2] = f"{bname}/dequantized"
    for node in model.graph.node:  # every reader of a quantized activation reads it through Q/DQ
        for k, name in enumerate(node.input):
            if name in act_dq:
                node.input[k] = act_dq[name]
    # Q/DQ nodes go first where their inputs exist: weights' at the top, activations' right
    # after the producer (keeps the node list topologically sorted)
    producers = {o: i for i, n in enumerate(model.graph.node) for o in n.output}
    new_names = {t.name for t in new_inits}
    ordered: list[Any] = [n for n in dq_nodes if n.input[0] in new_names]
    after: dict[int, list[Any]] = {}
    for n in dq_nodes:
        if n.op_type == "QuantizeLinear" or n.input[0].endswith("/quantized"):
            src = n.input[0] if n.op_type == "QuantizeLinear" else n.input[0][: -len("/quantized")]
            after.setdefault(producers.get(src, -1), []).append(n)
    nodes = ordered + after.get(-1, [])
    for i, n in enumerate(model.graph.node):
        nodes.append(n)
        nodes += after.get(i, [])
    from .optimize import nested_reads

    used = {name for n in model.graph.node for name in n.input} | nested_reads(model.graph)
    kept = [t for t in model.graph.initializer if t.name in used and t.name not in done]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + new_inits)
    onnx.checker.check_model(model)
    meta = dict(engine.metadata)
    meta.update({"precision": "int8", "int8": {"calibration_samples": int(len(x)), "quantized_nodes": len(targets),
                                              "scheme": "QDQ, symmetric int8, per-channel weights, max-abs"}})
    attach_metadata(model, meta)
    return Engine(model, meta)


def accuracy(engine: Any, inputs: np.ndarray, labels: np.ndarray, backend: str = "onnxruntime",
             batch_size: int = 256) -> float:
    """Top-1 accuracy (fraction) of a classifier engine on labelled inputs."""
    runner = engine.runner(backend)
    try:
        name, out = engine.inputs[0].name, engine.outputs[0].name
        preds = [np.asarray(runner.run({name: inputs[i:i + batch_size]})[out]).argmax(axis=-1)
                 for i in range(0, len(inputs), batch_size)]
    finally:
        runner.close()
    return float((np.concatenate(preds) == np.asarray(labels)).mean())

