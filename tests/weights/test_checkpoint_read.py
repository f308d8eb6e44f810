"""The checkpoint reader against TensorFlow's own reader, on checkpoints TensorFlow writes.

Every tensor is compared bit for bit with `tf.train.load_checkpoint(prefix).get_tensor(key)`.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import ckpt_fixtures as F
from tf2rt.errors import UnsupportedError
from tf2rt.weights.base import BOOKKEEPING, OPTIMIZER_SLOT, VARIABLE
from tf2rt.weights.tf_checkpoint import BundleSource, open_checkpoint


@pytest.fixture(scope="module")
def ckpts(tf, tmp_path_factory):
    """name -> checkpoint path, written once per module by real TensorFlow."""
    import oracles

    out = tmp_path_factory.mktemp("ckpts")
    paths = {
        "tf1_rnn": F.tf1_rnn(tf, out),
        "tf1_misc": F.tf1_misc(tf, out),
        "tf1_sharded": F.tf1_sharded(tf, out),
        "tf2_sharded": F.tf2_sharded(tf, out),
    }
    v1 = out / "v1"
    v1.mkdir()
    paths["v1_misc"] = F.tf1_misc(tf, v1, "V1")
    paths["v1_sharded"] = F.tf1_sharded(tf, v1, "V1")
    paths["keras3"], weights3 = F.keras_rnn_checkpoint(tf, oracles.keras(), out, "keras3")
    paths["tf_keras"], weights2 = F.keras_rnn_checkpoint(tf, oracles.tf_keras(), out, "tf_keras")
    paths["saved_model"] = F.saved_model(tf, out)
    return {"paths": paths, "keras3": weights3, "tf_keras": weights2}


def _tf_prefix(path):
    return str(path / "variables" / "variables") if path.is_dir() else str(path)


def assert_same(ours: np.ndarray, theirs, what: str) -> None:
    theirs = np.asarray(theirs, dtype=object) if isinstance(theirs, bytes) else np.asarray(theirs)
    assert ours.shape == theirs.shape, what
    if ours.dtype == object or theirs.dtype == object:
        assert ours.dtype == object, what
        assert ours.ravel().tolist() == theirs.astype(object).ravel().tolist(), what
        return
    assert ours.dtype == theirs.dtype, (what, ours.dtype, theirs.dtype)
    assert ours.tobytes() == theirs.tobytes(), what  # bit for bit, NaNs included


V2_CASES = ["tf1_rnn", "tf1_misc", "tf1_sharded", "tf2_sharded", "keras3", "tf_keras", "saved_model"]


@pytest.mark.parametrize("case", V2_CASES)
def test_every_tensor_matches_tensorflow(tf, ckpts, case):
    path = ckpts["paths"][case]
    reader = tf.train.load_checkpoint(_tf_prefix(path))
    with open_checkpoint(path) as src:
        assert isinstance(src, BundleSource)
        infos = src.infos()
        assert sorted(i.key for i in infos) == sorted(reader.get_variable_to_shape_map())
        dtypes = reader.get_variable_to_dtype_map()
        for info in infos:
            assert tuple(reader.get_variable_to_shape_map()[info.key]) == info.shape
            assert str(info.dtype) == ("string" if dtypes[info.key].name == "string" else dtypes[info.key].name)
            ours = src.read(info.key)
            assert_same(ours, reader.get_tensor(info.key), f"{case}:{info.key}")
            assert_same(src.read(info.name), reader.get_tensor(info.key), f"{case}:{info.name}")


def test_tf1_names_and_kinds(ckpts):
    with open_checkpoint(ckpts["paths"]["tf1_rnn"]) as src:
        kinds = {i.name: i.kind for i in src.infos()}
        assert all(i.key == i.name for i in src.infos())
    assert kinds["rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel"] == VARIABLE
    assert kinds["lstm/rnn/basic_lstm_cell/bias"] == VARIABLE
    assert kinds["gru/rnn/gru_cell/gates/kernel"] == VARIABLE
    assert kinds["gru/rnn/gru_cell/candidate/kernel/Adam_1"] == OPTIMIZER_SLOT
    assert kinds["softmax/softmax_w/Adam"] == OPTIMIZER_SLOT
    assert kinds["beta1_power"] == OPTIMIZER_SLOT
    assert kinds["global_step"] == BOOKKEEPING
    variables = {n for n, k in kinds.items() if k == VARIABLE}
    assert len(variables) == 12  # 3 cells + 2 stacked cells (kernel, bias), GRU has 4, softmax 2


@pytest.mark.parametrize("case", ["keras3", "tf_keras"])
def test_object_graph_names_match_keras(ckpts, case):
    """Readable names are the models' variable names and hold their values (Keras as oracle)."""
    weights = ckpts[case]
    with open_checkpoint(ckpts["paths"][case]) as src:
        infos = src.infos()
        variables = {i.name for i in infos if i.kind == VARIABLE}
        assert variables == set(weights)
        for name, value in weights.items():
            info = src.info(name)
            assert info.key.endswith("/.ATTRIBUTES/VARIABLE_VALUE") and info.key != name
            np.testing.assert_array_equal(src.read(name), value)
        slots = [i for i in infos if i.kind == OPTIMIZER_SLOT]
        assert len(slots) >= 2 * len(weights)  # Adam keeps two slots per variable
        assert {i.name for i in infos if i.kind == BOOKKEEPING} == {"_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_saved_model_names(ckpts):
    with open_checkpoint(ckpts["paths"]["saved_model"]) as src:
        names = {i.name: i.key for i in src.infos() if i.kind == VARIABLE}
    assert names == {"w": "w/.ATTRIBUTES/VARIABLE_VALUE", "b": "b/.ATTRIBUTES/VARIABLE_VALUE"}


def test_partitioned_variables_reassembled(ckpts):
    expected = F.misc_values()
    with open_checkpoint(ckpts["paths"]["tf1_misc"]) as src:
        assert src.info("part/kernel").extra["slices"] == 3
        assert src.info("part/wide").extra["slices"] == 2
        np.testing.assert_array_equal(src.read("part/kernel"), expected["part/kernel"])
        np.testing.assert_array_equal(src.read("part/wide"), expected["part/wide"])


def test_sharded_save_has_three_shards(ckpts):
    with open_checkpoint(ckpts["paths"]["tf1_sharded"]) as src:
        assert src.num_shards == 3
        assert {i.extra["shard"] for i in src.infos()} == {0, 1, 2}


def test_tf2_sharding_policy_slices_variables_across_shards(ckpts):
    with open_checkpoint(ckpts["paths"]["tf2_sharded"]) as src:
        assert src.num_shards > 2
        assert src.info("kernel").extra["slices"] > 1  # reassembled from pieces in several shards
        assert len({e.shard for e in src._slice_entries.values()}) > 1


def test_bfloat16_and_strings(ckpts):
    import ml_dtypes

    with open_checkpoint(ckpts["paths"]["tf1_misc"]) as src:
        bf = src.read("dtypes/bfloat16")
        assert bf.dtype == ml_dtypes.bfloat16
        strings = src.read("strings/vec")
        assert strings.dtype == object and strings.tolist() == F.misc_values()["strings/vec"].tolist()
        assert src.info("strings/vec").dtype == "string"


def test_bfloat16_without_ml_dtypes_is_a_clear_error(ckpts, monkeypatch):
    with open_checkpoint(ckpts["paths"]["tf1_misc"]) as src:
        monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # makes `import ml_dtypes` fail
        assert src.info("dtypes/bfloat16").dtype == "bfloat16"
        src._infos = None
        with pytest.raises(UnsupportedError, match="pip install ml_dtypes"):
            src.read("dtypes/bfloat16")
        assert src.read("dtypes/float32").dtype == np.float32


# -- V1 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["v1_misc", "v1_sharded"])
def test_v1_checkpoints(tf, ckpts, case):
    path = ckpts["paths"][case]
    assert not list(path.parent.glob("*.index")), "Saver(write_version=V1) must not write a V2 index"
    reader = tf.train.load_checkpoint(str(path))
    expected = F.misc_values()
    with open_checkpoint(path) as src:
        assert type(src).__name__ == "V1Source"
        infos = src.infos()
        assert sorted(i.name for i in infos) == sorted(reader.get_variable_to_shape_map())
        compared_with_tf = 0
        for info in infos:
            ours = src.read(info.name)
            try:
                theirs = reader.get_tensor(info.name)
            except tf.errors.UnimplementedError:
                # TF's own V1 reader lacks some dtypes and sliced reads: use the saved values.
                theirs = expected[info.name]
            else:
                compared_with_tf += 1
            assert_same(ours, theirs, f"{case}:{info.name}")
        assert compared_with_tf >= 6


# -- laziness ----------------------------------------------------------------------------
def test_listing_reads_no_data(ckpts):
    with open_checkpoint(ckpts["paths"]["tf1_rnn"]) as src:
        assert len(src.infos()) > 30
        assert src._maps == {}  # no data shard opened just to list
        src.read("softmax/softmax_b")
        assert list(src._maps) == [0]
