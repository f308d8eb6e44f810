"""`tf2rt classify IMAGE|DIR --model ENGINE|SRC`: top-k labels of images with an engine."""

from __future__ import annotations

import argparse

from ..errors import Tf2rtError
from .argtypes import positive_int
from .jsonout import add_json_option, check_json_target, emit_json


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = text.lower().split("x")
        return int(h), int(w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 224x224 (HxW), got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify images (files or folders) with an engine or a TF/Keras model",
                       description="Top-k classification of images. MODEL is an engine (.engine/.onnx) or a "
                                   "model to build one from (.keras/.h5, frozen .pb, SavedModel directory).")
    p.add_argument("images", nargs="+", metavar="IMAGE|DIR", help="image files, or folders searched recursively")
    p.add_argument("--model", required=True, metavar="ENGINE|SRC",
                   help="engine file, or a .keras/.h5/.pb/SavedModel to build one from")
    p.add_argument("--labels", metavar="FILE", help="one label per line (1000, or 1001 with background first)")
    p.add_argument("--preprocess", default="inception", choices=["vgg", "inception", "caffe", "torch", "none"],
                   help="pixel scaling the model was trained with (default inception: [-1, 1])")
    p.add_argument("--size", type=_size, metavar="HxW", help="input size when the engine's is dynamic")
    p.add_argument("--topk", type=positive_int, default=5, help="labels per image (default 5)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per engine call (default 8)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"], help="when building from a model")
    p.add_argument("--calibration", metavar="DIR|NPZ", help="int8: calibration images (or preprocessed inputs)")
    p.add_argument("--backend", default="onnxruntime", help="onnxruntime (default), reference or cuda")
    add_json_option(p, "the top-k results")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..apps.classify import Classifier

    if args.topk < 1:
        raise Tf2rtError("--topk must be at least 1")
    check_json_target(args, [args.model, *args.images])
    clf = Classifier(args.model, args.labels, args.preprocess, args.size, backend=args.backend,
                     precision=args.precision, batch_size=args.batch_size, calibration=args.calibration)
    try:
        results = clf.classify_paths(args.images, args.topk)
    finally:
        clf.close()
    emit_json(args, results)
    if args.json == "-":
        return 0
    for r in results:
        print(r["image"])
        for rank, t in enumerate(r["top"], 1):
            print(f"  {rank}. {t['label']} ({t['index']})  {t['score']:.4f}")
    return 0
