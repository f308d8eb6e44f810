"""`tf2rt faces detect|eval`: face detection with MTCNN on tf2rt engines, baselines, FDDB/WIDER/LFW evaluation."""

from __future__ import annotations

import argparse

from .argtypes import image_path, png_path, positive_finite_float, positive_int
from .jsonout import add_json_option, check_json_target, emit_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("faces", help="detect faces (MTCNN on tf2rt engines) and evaluate detectors",
                              description="Face detection with MTCNN converted to tf2rt engines, OpenCV's Haar "
                                          "cascade and the mtcnn package as baselines, and FDDB / WIDER FACE / "
                                          "LFW-subset evaluation.")
    sub = p.add_subparsers(dest="faces_command", metavar="ACTION")

    d = sub.add_parser("detect", help="detect faces in images")
    d.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    d.add_argument("--detector", default="mtcnn", choices=["mtcnn", "haar", "mtcnn-tf"],
                   help="mtcnn: tf2rt engines (default); haar: OpenCV's cascade; mtcnn-tf: the mtcnn package "
                        "on TensorFlow")
    d.add_argument("--draw", metavar="OUT.png", type=image_path, help="save the (first) image with the faces drawn; with several "
                                                     "images, OUT gets the image's index appended")
    add_json_option(d, "the faces found (image, box, score, landmarks)")
    d.add_argument("--backend", default=None, help="MTCNN engines' backend: onnxruntime (default) or reference")
    d.add_argument("--min-face-size", type=positive_finite_float, default=None, help="MTCNN: smallest face in pixels (20)")
    d.add_argument("--scale-factor", type=positive_finite_float, default=None, help="MTCNN: pyramid step (0.709)")
    d.add_argument("--thresholds", default=None, metavar="P,R,O", help="MTCNN stage thresholds (0.6,0.7,0.8)")
    d.set_defaults(func=run_detect)

    e = sub.add_parser("eval", help="evaluate detectors on FDDB, WIDER FACE or scikit-image's LFW subset")
    e.add_argument("--dataset", required=True, choices=["fddb", "wider", "lfw-subset"],
                   help="protocol: FDDB (ROC/AUC), WIDER FACE (AP) or scikit-image's LFW subset (ROC AUC)")
    e.add_argument("path", nargs="?", help="dataset folder (FDDB: with FDDB-folds/ and originalPics/; WIDER: with "
                                           "wider_face_split/ and WIDER_val/); not needed for lfw-subset")
    e.add_argument("--detectors", default="mtcnn,haar", help="comma-separated: mtcnn, haar, mtcnn-tf")
    e.add_argument("--plot", metavar="OUT.png", type=png_path, help="save the curves as a PNG")
    add_json_option(e, "the results (table rows with identifier keys, notes and curves)")
    e.add_argument("--max-fp", type=positive_finite_float, default=1000.0, help="FDDB: AUC over 0..MAX_FP false positives (1000)")
    e.add_argument("--region", default="ellipse", choices=["ellipse", "bbox"],
                   help="FDDB: overlap with the ellipse (rasterised) or its bounding box")
    e.add_argument("--folds", default="1-10", help="FDDB folds, e.g. 1-10 or 1,2,5")
    e.add_argument("--setting", default="all", choices=["all", "easy", "medium", "hard"],
                   help="WIDER: difficulty (easy/medium/hard need the official .mat split files)")
    e.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    e.add_argument("--detections", action="append", default=[], metavar="LABEL=FILE[,FILE...]",
                   help="FDDB: also score precomputed detections in FDDB's rectangle format (repeatable)")
    e.add_argument("--save-detections", metavar="DIR", help="FDDB: write each detector's detections as "
                                                             "DIR/<detector>/fold-XX-out.txt and its ROC points "
                                                             "as DIR/<detector>DiscROC.txt / ContROC.txt")
    e.set_defaults(func=run_eval)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _params(args: argparse.Namespace) -> dict:
    from ..errors import Tf2rtError

    out: dict = {}
    if args.min_face_size is not None:
        out["min_face_size"] = args.min_face_size
    if args.scale_factor is not None:
        out["scale_factor"] = args.scale_factor
    if args.thresholds:
        try:
            p, r, o = (float(v) for v in args.thresholds.split(","))
        except ValueError:
            raise Tf2rtError(f"--thresholds takes three numbers P,R,O (e.g. 0.6,0.7,0.8), got {args.thresholds!r}")
        out.update(threshold_pnet=p, threshold_rnet=r, threshold_onet=o)
    if out and args.detector == "haar":
        raise Tf2rtError("--min-face-size, --scale-factor and --thresholds are MTCNN knobs; not for --detector haar")
    if args.backend is not None:
        if args.detector != "mtcnn":
            raise Tf2rtError("--backend picks the backend of tf2rt's MTCNN engines; use it with --detector mtcnn")
        out["backend"] = args.backend
    return out


def _quiet_tensorflow() -> None:
    """The mtcnn-tf baseline imports TensorFlow; keep its start-up chatter off the terminal."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_detect(args: argparse.Namespace) -> int:
    from ..apps.faces.detectors import make_detector
    from ..apps.faces.plot import draw_faces
    from ..apps.faces.runs import load_image

    check_json_target(args, args.images)
    images = [(path, load_image(path)) for path in args.images]  # fail on a bad file before loading models
    if args.draw:  # refuse a bad drawing path (or one of the images) before detecting anything
        from ..outputs import check_not_input, check_writable

        for k in range(len(images)):
            out = args.draw if len(images) == 1 else _indexed(args.draw, k)
            check_not_input(check_writable(out, "--draw"), args.images, "--draw")
    _quiet_tensorflow()
    detector = make_detector(args.detector, **_params(args))
    report = []
    for k, (path, image) in enumerate(images):
        faces = detector.detect(image)
        report.append({"image": path, "faces": [f.to_dict() for f in faces]})
        if args.draw:
            out = args.draw if len(images) == 1 else _indexed(args.draw, k)
            draw_faces(image, faces, out, args.images)
        if args.json != "-":
            print(f"{path}: {len(faces)} face(s)")
            for f in faces:
                x, y, w, h = f.box
                print(f"  box x={x:.1f} y={y:.1f} w={w:.1f} h={h:.1f}  score {f.score:.4f}")
    emit_json(args, report if len(report) > 1 else report[0], args.images)
    return 0


def _indexed(path: str, k: int) -> str:
    stem, dot, ext = path.rpartition(".")
    return f"{stem}_{k}.{ext}" if dot else f"{path}_{k}"


def _folds(text: str) -> tuple[int, ...]:
    from ..errors import Tf2rtError

    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise Tf2rtError(f"--folds takes numbers and ranges like 1-10 or 1,3,5, got {text!r}") from None
    if not out or min(out) < 1 or max(out) > 10:
        raise Tf2rtError(f"FDDB folds are 1..10, got {text!r}")
    return tuple(out)


def _external(args: argparse.Namespace) -> dict:
    from ..apps.faces.datasets import read_fddb, read_fddb_detections
    from ..errors import Tf2rtError

    if not args.detections:
        return {}
    if args.dataset != "fddb" or not args.path:
        raise Tf2rtError("--detections reads FDDB result files; use it with --dataset fddb PATH")
    anns = read_fddb(args.path, _folds(args.folds))
    out = {}
    for spec in args.detections:
        label, sep, files = spec.partition("=")
        if not sep or not label or not files:
            raise Tf2rtError(f"--detections takes LABEL=FILE[,FILE...], got {spec!r}")
        out[label] = read_fddb_detections([f for f in files.split(",") if f], anns)
    return out


def run_eval(args: argparse.Namespace) -> int:
    from ..apps.faces.evaluate import results_table
    from ..apps.faces.plot import plot_curves
    from ..apps.faces.runs import evaluate

    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    check_json_target(args, [args.path] if args.path else [])
    if args.plot:  # refuse a bad plot path before the (long) evaluation
        from ..outputs import check_writable

        check_writable(args.plot, "--plot")
    _quiet_tensorflow()
    external = _external(args)
    result = evaluate(args.dataset, args.path, names, max_fp=args.max_fp, setting=args.setting, region=args.region,
                      limit=args.limit, folds=_folds(args.folds), external=external,
                      save_dir=args.save_detections)
    if args.plot:
        plot_curves(result, args.plot)  # checked writable before the evaluation, written atomically
    emit_json(args, result.to_json())
    if args.json != "-":
        notes = ", ".join(f"{k} {v}" for k, v in result.notes.items())
        print(f"{args.dataset}: {notes}")
        print(results_table(result.rows, titles=result.titles()))
    return 0
