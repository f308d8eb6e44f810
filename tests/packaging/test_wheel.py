"""The wheel a user installs: a plain `pip install tf2rt` converts and runs the bundled model,
and `[all]` runs `tf2rt demo` from any directory (no checkout needed).

One wheel and one fresh virtual environment (no system site packages) serve both tests; the
dependencies come from the package index as for a user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]


def _sh(argv, cwd=None, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["TF2RT_NO_PROGRESS"] = "1"
    res = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, argv))} failed ({res.returncode}):\n{res.stdout[-3000:]}\n" \
                                f"{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (the checkout stays untouched)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "tf2rt", src / "tf2rt", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    _sh([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", out], cwd=src)
    (whl,) = out.glob("tf2rt-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed without extras."""
    root = tmp_path_factory.mktemp("venv")
    _sh([sys.executable, "-m", "venv", root])
    _sh([root / "bin" / "python", "-m", "pip", "install", "-q", wheel])
    return root


def test_wheel_ships_the_example_license_and_typing_marker(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for want in ("tf2rt/data/charrnn/vocab.json", "tf2rt/data/charrnn/model/charrnn.index",
                 "tf2rt/data/charrnn/model/charrnn.data-00000-of-00001", "tf2rt/data/charrnn/model/charrnn.meta",
                 "tf2rt/data/charrnn/train.py", "tf2rt/py.typed"):
        assert want in names, want
    assert any(n.endswith("licenses/LICENSE") for n in names)
    meta = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in meta
    for dep in ("onnx", "onnxruntime", "google-crc32c", "numpy"):
        assert any(line.startswith(f"Requires-Dist: {dep}") and "extra ==" not in line for line in meta.splitlines()), dep


def test_plain_install_converts_and_runs_the_bundled_model(venv, tmp_path):
    py, tf2rt = venv / "bin" / "python", venv / "bin" / "tf2rt"
    model = _sh([py, "-c", "from tf2rt.cli.demo import EXAMPLE; print(EXAMPLE / 'model')"], cwd=tmp_path).stdout.strip()
    assert str(REPO) not in model  # the installed copy, not the checkout
    _sh([tf2rt, "convert", model, "-o", tmp_path / "charrnn"], cwd=tmp_path)
    np.savez(tmp_path / "in.npz", input_data=np.array([[3, 14, 15, 9]], np.int32))  # no state inputs: zeros
    res = _sh([tf2rt, "run", tmp_path / "charrnn", "--inputs", tmp_path / "in.npz", "--outputs", tmp_path / "out.npz"],
              cwd=tmp_path)
    assert "logits: float32[" in res.stdout
    probs = np.load(tmp_path / "out.npz")["probs"]
    assert probs.shape[-1] == 58 and np.allclose(probs.sum(-1), 1, atol=1e-5)
    # an optional feature without its extra says which extra to install, in one line
    res = subprocess.run([tf2rt, "faces", "eval", "--dataset", "lfw-subset", "--detectors", "haar"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
    assert "pip install 'tf2rt[faces]'" in res.stderr


def test_all_extras_run_the_demo_outside_the_checkout(venv, wheel, tmp_path):
    _sh([venv / "bin" / "python", "-m", "pip", "install", "-q", f"{wheel}[all]"], timeout=900)
    res = _sh([venv / "bin" / "tf2rt", "demo", "--length", "50", "--no-tensorflow"], cwd=tmp_path)
    assert "== 2. generate 50 characters" in res.stdout and "ms per character" in res.stdout
