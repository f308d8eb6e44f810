"""HDF5 data that lives outside the file (external storage, virtual datasets, external links,
soft links that lead to them) is refused: reading a Keras file never pulls in another file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from sec_bounded import assert_refused, run_cli

h5py = pytest.importorskip("h5py")

SECRET = b"root:x:0:0:SECRET-BYTES-FROM-ANOTHER-FILE:/root:/bin/bash\n" * 2


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    p = tmp_path / "passwd"
    p.write_bytes(SECRET)
    return p


def _legacy(path: Path, make_weight) -> Path:
    """A legacy Keras weights file whose one weight is made by `make_weight(group, name)`."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.21.0"
        f.attrs["model_config"] = '{"class_name": "Sequential", "config": {"layers": []}}'
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([b"dense"])
        layer = g.create_group("dense")
        layer.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        layer.create_group("dense")
        make_weight(layer["dense"], "kernel:0")
    return path


def _keras3(path: Path, make_weight) -> Path:
    """A Keras 3 `.weights.h5` layout: layers/dense/vars/0."""
    with h5py.File(path, "w") as f:
        v = f.create_group("layers").create_group("dense").create_group("vars")
        make_weight(v, "0")
    return path


def _external(secret: Path):
    def make(group, name):
        group.create_dataset(name, shape=(len(SECRET),), dtype="u1", external=[(str(secret), 0, len(SECRET))])
    return make


def _virtual(secret_h5: Path):
    def make(group, name):
        layout = h5py.VirtualLayout(shape=(len(SECRET),), dtype="u1")
        layout[:] = h5py.VirtualSource(str(secret_h5), "data", shape=(len(SECRET),))
        group.create_virtual_dataset(name, layout)
    return make


def _ext_link(secret_h5: Path):
    def make(group, name):
        group[name] = h5py.ExternalLink(str(secret_h5), "data")
    return make


def _soft_to_ext(secret_h5: Path):
    def make(group, name):
        group.file["escape"] = h5py.ExternalLink(str(secret_h5), "data")
        group[name] = h5py.SoftLink("/escape")
    return make


@pytest.fixture
def secret_h5(tmp_path: Path) -> Path:
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.frombuffer(SECRET, np.uint8)
    return p


def _no_secret(tmp_path: Path, res) -> None:
    for text in (res.stdout, res.stderr):
        assert "SECRET-BYTES" not in text
    for p in tmp_path.rglob("*"):
        if p.is_file() and p.name not in ("passwd", "other.h5"):
            data = p.read_bytes()
            if p.suffix in (".h5", ".keras"):
                continue  # the hostile inputs themselves may name the file, never hold its bytes
            assert b"SECRET-BYTES" not in data, p


@pytest.mark.parametrize("layout", ["legacy", "keras3", "keras-zip"])
@pytest.mark.parametrize("kind", ["external", "virtual", "extlink", "soft-to-extlink"])
def test_outside_storage_refused(tmp_path, secret, secret_h5, layout, kind):
    make = {"external": lambda: _external(secret), "virtual": lambda: _virtual(secret_h5),
            "extlink": lambda: _ext_link(secret_h5), "soft-to-extlink": lambda: _soft_to_ext(secret_h5)}[kind]()
    if layout == "legacy":
        src = _legacy(tmp_path / "ext.h5", make)
    else:
        src = _keras3(tmp_path / "ext.weights.h5", make)
        if layout == "keras-zip":
            z = tmp_path / "ext.keras"
            with zipfile.ZipFile(z, "w") as zf:
                zf.writestr("config.json", '{"class_name": "Sequential", "config": {"layers": []}}')
                zf.write(src, "model.weights.h5")
            src.unlink()
            src = z
    out = tmp_path / "ext.npz"
    res = run_cli(["dump", src, "-o", out])
    line = assert_refused(res, "inside the file")
    assert not out.exists() or b"SECRET-BYTES" not in out.read_bytes()
    _no_secret(tmp_path, res)
    res = run_cli(["inspect", src])
    assert_refused(res, "inside the file")
    assert "SECRET" not in line


def test_soft_link_inside_file_still_reads(tmp_path):
    """A soft link to a dataset in the same file is fine (followed by tf2rt itself)."""
    from tf2rt.weights.api import load_weights

    def make(group, name):
        group.file["stored"] = np.arange(6, dtype=np.float32)
        group[name] = h5py.SoftLink("/stored")

    src = _legacy(tmp_path / "soft.h5", make)
    w = load_weights(src)
    np.testing.assert_array_equal(w["dense/kernel"].array, np.arange(6, dtype=np.float32))


def test_baseline_reads_under_the_limit(tmp_path):
    """The same file with ordinary storage dumps fine under the same memory limit."""
    src = _legacy(tmp_path / "ok.h5", lambda g, n: g.create_dataset(n, data=np.arange(6, dtype=np.float32)))
    out = tmp_path / "ok.npz"
    res = run_cli(["dump", src, "-o", out])
    assert res.code == 0, res.stderr
    with np.load(out) as z:
        np.testing.assert_array_equal(z["dense/kernel"], np.arange(6, dtype=np.float32))


def test_etc_passwd_external_storage(tmp_path):
    """The reported case: a dataset whose storage is /etc/passwd."""
    passwd = Path("/etc/passwd")
    assert passwd.is_file()
    src = _legacy(tmp_path / "ext.h5", lambda g, n: g.create_dataset(
        n, shape=(32,), dtype="u1", external=[(str(passwd), 0, 32)]))
    out = tmp_path / "ext.npz"
    res = run_cli(["dump", src, "-o", out])
    assert_refused(res, "stored in external files")
    assert not out.exists()
    head = passwd.read_bytes()[:32]
    assert head.decode("latin1") not in res.stdout + res.stderr
