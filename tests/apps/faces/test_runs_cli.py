"""Datasets through detectors end to end (tiny FDDB/WIDER folders made from real photos), and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from photos import lfw_mosaic
from tf2rt.apps.faces.runs import evaluate, load_image
from tf2rt.cli import main


def _save(path, rgb):
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def tiny_fddb(tmp_path_factory, photos):
    """Two images annotated by hand: the astronaut's face, and the ten faces of an LFW mosaic
    (each 100 px cell holds one face, roughly centred)."""
    root = tmp_path_factory.mktemp("fddb")
    (root / "originalPics").mkdir()
    (root / "FDDB-folds").mkdir()
    _save(root / "originalPics" / "astronaut.jpg", photos["astronaut"])
    _save(root / "originalPics" / "mosaic.jpg", lfw_mosaic())
    lines = ["astronaut", "1", f"62 44 {np.pi / 2} 223 118 1", "mosaic", "10"]
    lines += [f"42 32 {np.pi / 2} {c * 100 + 50} {r * 100 + 50} 1" for r in range(2) for c in range(5)]
    (root / "FDDB-folds" / "FDDB-fold-01-ellipseList.txt").write_text("\n".join(lines) + "\n")
    return root


def test_fddb_eval_on_real_photos(tiny_fddb, tmp_path):
    from tf2rt.apps.faces.plot import plot_curves

    res = evaluate("fddb", tiny_fddb, ["mtcnn", "haar"], max_fp=10, folds=(1,))
    assert plot_curves(res, tmp_path / "roc.png").stat().st_size > 1000
    rows = {r["detector"]: r for r in res.rows}
    assert res.notes["faces"] == 11 and res.notes["images"] == 2
    # MTCNN finds 9 of the mosaic's 10 faces plus the astronaut, with no false positive
    assert rows["mtcnn"]["tpr_at_max_fp"] == pytest.approx(10 / 11)
    assert rows["mtcnn"]["auc_discrete"] == pytest.approx(10 / 11)
    assert 0 < rows["mtcnn"]["auc_continuous"] < rows["mtcnn"]["auc_discrete"]
    assert 0 <= rows["haar"]["auc_discrete"] <= 1 and rows["haar"]["speed_ms"] > 0


def test_wider_eval_on_real_photos(tmp_path, photos):
    root = tmp_path
    img_dir = root / "WIDER_val" / "images" / "0--Parade"
    img_dir.mkdir(parents=True)
    (root / "wider_face_split").mkdir()
    _save(img_dir / "0_Parade_a.jpg", photos["grace_hopper"])
    # Grace Hopper's face, boxed by hand, and a 6 px face nobody can find (counts against recall)
    (root / "wider_face_split" / "wider_face_val_bbx_gt.txt").write_text(
        "0--Parade/0_Parade_a.jpg\n2\n150 85 200 255 0 0 0 0 0 0\n10 10 6 6 2 0 0 0 0 0\n")
    res = evaluate("wider", root, ["mtcnn"])
    assert res.rows[0]["ap"] == pytest.approx(0.5)


def test_lfw_subset_classifier_auc():
    res = evaluate("lfw-subset", None, ["mtcnn", "haar"])
    rows = {r["detector"]: r for r in res.rows}
    assert rows["mtcnn"]["roc_auc"] > 0.95 and rows["haar"]["roc_auc"] > 0.9
    c = res.curves["mtcnn"]
    assert c["fpr"][0] == 0 and c["tpr"][-1] == 1


def test_cli_detect_json_and_draw(tmp_path, photos, capsys):
    img = tmp_path / "astro.png"
    _save(img, photos["astronaut"])
    out = tmp_path / "drawn.png"
    assert main(["faces", "detect", str(img), "--json", "--draw", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["faces"]) == 1 and set(report["faces"][0]["landmarks"]) >= {"nose", "left_eye"}
    assert load_image(out).shape == photos["astronaut"].shape
    assert main(["faces", "detect", str(img), "--detector", "haar"]) == 0
    assert "1 face(s)" in capsys.readouterr().out
    # the numpy reference backend gives the same face
    assert main(["faces", "detect", str(img), "--backend", "reference", "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)["faces"][0]
    assert np.allclose(ref["box"], report["faces"][0]["box"], atol=0.01)


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"hello")
    assert main(["faces", "detect", str(bad)]) == 2
    assert "cannot decode image" in capsys.readouterr().err
    assert main(["faces", "eval", "--dataset", "fddb", str(tmp_path)]) == 2
    assert "FDDB fold file" in capsys.readouterr().err
    assert main(["faces", "detect", str(bad), "--detector", "haar", "--min-face-size", "30"]) == 2
    assert main(["faces", "eval", "--dataset", "fddb", str(tmp_path), "--folds", "0-3"]) == 2


def test_cli_eval_lfw_json_and_plot(tmp_path, capsys):
    plot = tmp_path / "roc.png"
    assert main(["faces", "eval", "--dataset", "lfw-subset", "--detectors", "haar", "--json", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["detector"] == "haar" and plot.stat().st_size > 1000


def test_module_level_detect(photos):
    from tf2rt.apps.faces import Face, detect

    faces = detect(photos["astronaut"])
    assert len(faces) == 1 and isinstance(faces[0], Face)
    x, y, w, h = faces[0].box
    assert 150 < x < 200 and 40 < y < 90 and 70 < w < 100 and faces[0].score > 0.99
    assert detect(photos["coffee"]) == []


def test_image_claiming_a_huge_size_is_refused_before_decoding(tmp_path):
    import struct
    import zlib

    import cv2

    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((4, 4, 3), np.uint8))
    data = bytearray(small.read_bytes())
    # IHDR chunk: length(4) 'IHDR' width(4) height(4) ...; patch the size and fix the chunk CRC
    i = data.index(b"IHDR")
    data[i + 4:i + 12] = struct.pack(">II", 60000, 60000)
    data[i + 17:i + 21] = struct.pack(">I", zlib.crc32(bytes(data[i:i + 17])))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bytes(data))
    from tf2rt.errors import FormatError

    with pytest.raises(FormatError, match="too large|60000x60000 pixels"):
        load_image(bomb)
    data[i + 4:i + 12] = struct.pack(">II", 12000, 9000)  # 108 Mpx: under Pillow's cap, over ours
    data[i + 17:i + 21] = struct.pack(">I", zlib.crc32(bytes(data[i:i + 17])))
    bomb.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="12000x9000 pixels, over the 100000000 pixel limit"):
        load_image(bomb)


def test_cli_fddb_saves_and_scores_detection_files(tiny_fddb, tmp_path, capsys):
    saved = tmp_path / "dets"
    assert main(["faces", "eval", "--dataset", "fddb", str(tiny_fddb), "--folds", "1", "--detectors", "mtcnn",
                 "--max-fp", "10", "--save-detections", str(saved), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["results"][0]
    out_file = saved / "mtcnn" / "fold-01-out.txt"
    assert out_file.read_text().startswith("astronaut\n1\n")
    disc = np.loadtxt(saved / "mtcnnDiscROC.txt", ndmin=2)  # "TPR FP" lines
    assert disc[-1, 0] == pytest.approx(first["tpr_at_max_fp"]) and disc[:, 1].min() == 0
    # the saved file, scored as external detections, gives the same numbers
    assert main(["faces", "eval", "--dataset", "fddb", str(tiny_fddb), "--folds", "1", "--detectors", "",
                 "--max-fp", "10", "--detections", f"saved={out_file}", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["results"][0]
    assert again["detector"] == "saved"
    assert again["auc_discrete"] == pytest.approx(first["auc_discrete"], abs=1e-9)
    assert again["auc_continuous"] == pytest.approx(first["auc_continuous"], abs=1e-4)
