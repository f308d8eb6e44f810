"""The allow-listed unpickler: rebuilds joblib's numpy arrays, refuses anything that could run code."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from tf2rt.apps.faces.mtcnn_weights import load_mtcnn_weights, package_weights_dir, weight_names
from tf2rt.apps.faces.safe_pickle import safe_load, safe_loads
from tf2rt.errors import FormatError



def _joblib():
    import oracles

    return oracles._require("joblib")


class _RunsCode:
    """Unpickling this calls os.system - the classic hostile pickle."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_reads_what_joblib_writes_lz4(tmp_path):
    jl = _joblib()
    rng = np.random.default_rng(0)
    arrays = [
        rng.standard_normal((3, 3, 3, 10)).astype(np.float32),
        np.arange(7, dtype=np.int64),
        np.asfortranarray(rng.standard_normal((4, 5))),
        np.zeros((0, 3), np.float32),
        {"a": np.float16([1.5, -2]), "b": (1, 2.5, "x")},
    ]
    for compress in ("lz4", ("zlib", 3), 0):
        path = tmp_path / f"w_{compress if isinstance(compress, str) else 'x'}.pkl"
        jl.dump(arrays, path, compress=compress)
        got = safe_load(path)
        want = jl.load(path)
        for g, w in zip(got[:4], want[:4]):
            assert g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w)
        assert np.array_equal(got[4]["a"], want[4]["a"]) and got[4]["b"] == want[4]["b"]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_numpy_pickle_of_arrays_loads(protocol):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = safe_loads(pickle.dumps([a, {"k": a.T.copy()}], protocol=protocol))
    assert np.array_equal(got[0], a) and np.array_equal(got[1]["k"], a.T)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps([np.zeros(2), _RunsCode(f"touch {marker}")], protocol=protocol)
    with pytest.raises(FormatError, match=r"refusing .*global (posix|os|nt)\.system"):
        safe_loads(payload, "evil.pkl")
    assert not marker.exists()


def test_hostile_joblib_lz4_file_is_refused(tmp_path):
    jl = _joblib()
    marker = tmp_path / "pwned2"
    path = tmp_path / "evil.lz4"
    jl.dump([np.ones(3, np.float32), _RunsCode(f"touch {marker}")], path, compress="lz4")
    with pytest.raises(FormatError, match="refusing to load .*evil.lz4"):
        safe_load(path)
    assert not marker.exists()


def test_other_globals_and_object_arrays_are_refused():
    with pytest.raises(FormatError, match="builtins.eval"):
        safe_loads(b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03.")
    with pytest.raises(FormatError, match="refusing"):
        safe_loads(pickle.dumps(np.array([1, "x"], dtype=object), protocol=2))


def test_truncated_and_garbage_inputs_give_format_errors(tmp_path):
    jl = _joblib()
    path = tmp_path / "w.pkl"
    jl.dump([np.arange(1000, dtype=np.float32)], path, compress=0)
    data = path.read_bytes()
    with pytest.raises(FormatError, match="truncated"):
        safe_loads(data[: len(data) - 100])
    with pytest.raises(FormatError, match="not a joblib/pickle file"):
        safe_loads(b"GIF89a....")
    lz = tmp_path / "w.lz4"
    jl.dump([np.arange(1000, dtype=np.float32)], lz, compress="lz4")
    with pytest.raises(FormatError, match="lz4"):
        safe_loads(lz.read_bytes()[:40])
    with pytest.raises(FormatError, match="cannot read"):
        safe_load(tmp_path / "missing.lz4")


def test_mtcnn_package_weights_match_joblib():
    jl = _joblib()
    for net in ("pnet", "rnet", "onet"):
        ours = load_mtcnn_weights(net)
        theirs = jl.load(package_weights_dir() / f"{net}.lz4")
        assert list(ours) == weight_names(net)
        for (name, a), b in zip(ours.items(), theirs):
            assert a.shape == b.shape and np.array_equal(a, b), name


def test_huge_claimed_array_shape_is_refused_without_allocating(tmp_path):
    jl = _joblib()
    path = tmp_path / "w.pkl"
    jl.dump([np.arange(4, dtype=np.float32)], path, compress=0, protocol=2)  # protocol 2: no frames to fix up
    data = path.read_bytes()
    # rewrite the stored shape (4,) as (2**30,): BININT1 4 -> BININT 2**30 (4 GiB of float32 claimed)
    i = data.index(b"shape")
    j = data.index(b"K\x04", i)
    forged = data[:j] + b"J" + (2**30).to_bytes(4, "little", signed=True) + data[j + 2:]
    with pytest.raises(FormatError, match="truncated array data .*4294967296 bytes"):
        safe_loads(forged)
