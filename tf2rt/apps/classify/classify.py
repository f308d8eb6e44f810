"""Top-k classification of images with an engine (built on the fly from a TF/Keras model if needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ...errors import Tf2rtError, UnsupportedError
from ...progress import Progress
from .labels import label_for, load_labels
from .preprocess import list_images, load_image, preprocess


def network_from_source(src: str | Path) -> Any:
    """A Network from a .keras/.h5 file, a frozen .pb GraphDef or a SavedModel directory."""
    from ...importers import build_network, detect_source

    p = Path(src)
    if detect_source(p) == "tf-checkpoint":
        raise UnsupportedError(f"{p}: not an engine (.engine/.onnx), Keras file (.keras/.h5), frozen graph (.pb) "
                               "or SavedModel directory")
    return build_network(p)[0]


def load_classifier_engine(model: Any, precision: str = "fp32", calibration: Any = None,
                           preprocessing: str = "inception") -> Any:
    """An Engine: given, loaded from an engine file, or built from a model source (int8:
    quantized with `calibration`, a folder of images or an .npz; see tf2rt.engine.int8)."""
    from ...engine import Engine, build_engine, load_engine
    from ...engine.sniff import onnx_kind

    if isinstance(model, Engine):
        return model
    p = Path(model)
    if p.is_file() and (p.suffix.lower() in (".engine", ".onnx") or onnx_kind(p)):
        return load_engine(p)
    net = network_from_source(p)
    if precision == "int8":
        if calibration is None:
            raise UnsupportedError("an int8 engine needs a calibration set (--calibration DIR|NPZ)")
        from ...engine.int8 import quantize

        fp32 = build_engine(net, metadata={"source": str(p)})
        if Path(calibration).is_dir() if isinstance(calibration, (str, Path)) else False:
            calibration = calibration_images(calibration, fp32, preprocessing)
        return quantize(fp32, calibration)
    return build_engine(net, precision=precision, metadata={"source": str(p)})


def calibration_images(folder: str | Path, engine: Any, preprocessing: str = "inception",
                       limit: int = 512) -> np.ndarray:
    """int8 calibration inputs from a folder of images: resized to the engine's input size and
    preprocessed (NCHW when the engine's input is), ready for tf2rt.engine.int8.quantize."""
    shape = engine.inputs[0].shape
    chw = shape[1] == 3 and shape[3] != 3
    size = tuple(shape[2:4] if chw else shape[1:3])
    if any(d is None for d in size):
        raise Tf2rtError(f"the engine's input size is dynamic {size}; pass preprocessed arrays instead")
    x = preprocess(np.stack([load_image(f, size) for f in list_images([folder])[:limit]]), preprocessing)
    return x.transpose(0, 3, 1, 2) if chw else x


class Classifier:
    """Preprocess images, run the engine in batches, return the top-k labels and scores."""

    def __init__(self, model: Any, labels: Optional[str | Path | list[str]] = None, preprocessing: str = "inception",
                 size: Optional[tuple[int, int]] = None, backend: str = "onnxruntime", precision: str = "fp32",
                 batch_size: int = 8, calibration: Any = None):
        self.engine = load_classifier_engine(model, precision, calibration, preprocessing)
        if len(self.engine.inputs) != 1:
            raise UnsupportedError(f"a classifier engine has one input; this one has {len(self.engine.inputs)}")
        spec = self.engine.inputs[0]
        if len(spec.shape) != 4:
            raise UnsupportedError(f"input {spec.name} has shape {spec.shape}; expected an image batch")
        self.channels_first = spec.shape[1] == 3 and spec.shape[3] != 3
        hw = tuple(spec.shape[2:4] if self.channels_first else spec.shape[1:3])
        if size is not None and all(d is not None for d in hw) and tuple(size) != hw:
            raise Tf2rtError(f"--size {size[0]}x{size[1]} differs from the engine's input size {hw[0]}x{hw[1]}")
        if size is None and any(d is None for d in hw):
            raise Tf2rtError(f"the engine's input size is dynamic {hw}; pass size=(H, W) (--size HxW)")
        self.size: tuple[int, int] = tuple(size or hw)  # type: ignore[assignment]
        self.preprocessing = preprocessing
        self.batch = max(int(batch_size), 1)
        if self.engine.inputs[0].shape[0] not in (None, -1):
            self.batch = int(self.engine.inputs[0].shape[0])
        self.labels = load_labels(labels) if isinstance(labels, (str, Path)) else labels
        self.runner = self.engine.runner(backend)

    def inputs(self, images: Sequence[np.ndarray]) -> np.ndarray:
        x = preprocess(np.stack(images), self.preprocessing)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if self.channels_first else x

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Class scores [N, classes]: the model's probabilities, or softmax of its logits."""
        out_name = self.engine.outputs[0].name
        rows = []
        for i in range(0, len(images), self.batch):
            chunk = list(images[i:i + self.batch])
            pad = self.batch - len(chunk) if self.engine.inputs[0].shape[0] not in (None, -1) else 0
            x = self.inputs(chunk + [chunk[-1]] * pad)
            y = np.asarray(self.runner.run({self.engine.inputs[0].name: x})[out_name], np.float64)
            rows.append(y.reshape(y.shape[0], -1)[: len(chunk)])
        y = np.concatenate(rows)
        if (y >= 0).all() and np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
            return y
        z = np.exp(y - y.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def top(self, scores: np.ndarray, k: int) -> list[list[dict]]:
        n = scores.shape[1]
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[{"index": int(j), "label": label_for(int(j), self.labels, n), "score": float(s[j])} for j in row]
                for s, row in zip(scores, order)]

    def classify_paths(self, paths: Sequence[str | Path], k: int = 5, progress: bool | None = None) -> list[dict]:
        """[{"image": path, "top": [{"index", "label", "score"}, ...]}, ...] for images and folders."""
        files = list_images(paths)
        results: list[dict] = []
        with Progress(len(files), "classify", " img", enabled=progress) as bar:
            for i in range(0, len(files), self.batch):
                chunk = files[i:i + self.batch]
                images = [load_image(f, self.size) for f in chunk]
                for f, top in zip(chunk, self.top(self.scores(images), k)):
                    results.append({"image": str(f), "top": top})
                bar.update(len(chunk))
        return results

    def close(self) -> None:
        self.runner.close()


def classify_paths(model: Any, paths: Sequence[str | Path], labels: Optional[str | Path] = None,
                   preprocessing: str = "inception", size: Optional[tuple[int, int]] = None, k: int = 5,
                   **options: Any) -> list[dict]:
    """Classify images and folders of images in one call (see Classifier)."""
    clf = Classifier(model, labels, preprocessing, size, **options)
    try:
        return clf.classify_paths(paths, k)
    finally:
        clf.close()
