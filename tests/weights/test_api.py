"""load_weights / dump_weights / open_weights on real TensorFlow checkpoints, compared with
tf.train.load_checkpoint, and dumps compared byte for byte with dumpTFWts' output."""

from __future__ import annotations

import numpy as np
import pytest

from fmt_fixtures import cached, dumptfwts_reference
from tf2rt.errors import FormatError, MissingTensorError, Tf2rtError
from tf2rt.weights.api import dump_weights, load_weights, open_weights
from tf2rt.weights.formats import detect_format


@pytest.fixture(scope="module")
def tf1_ckpt(tmp_path_factory, tf):
    return cached("tf1_multi_rnn", tmp_path_factory, tf)


@pytest.fixture(scope="module")
def tf2_ckpt(tmp_path_factory, tf):
    return cached("keras_lstm_tf2", tmp_path_factory, tf)


def tf_tensors(tf, prefix) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(prefix))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def is_slot(name: str) -> bool:
    return "/Adam" in name or name.startswith("beta") or "_power" in name


def test_tf1_variables_match_tensorflow(tf, tf1_ckpt):
    theirs = tf_tensors(tf, tf1_ckpt)
    ours = load_weights(tf1_ckpt)
    expected = {k for k in theirs if not is_slot(k) and k != "global_step"}
    assert set(ours) == expected
    assert "rnn/multi_rnn_cell/cell_1/gru_cell/candidate/kernel" in ours
    for name, w in ours.items():
        assert w.name == name
        assert w.dtype == theirs[name].dtype and w.shape == theirs[name].shape
        assert w.array.tobytes() == theirs[name].tobytes(), name


def test_tf1_optimizer_slots_on_request(tf, tf1_ckpt):
    theirs = tf_tensors(tf, tf1_ckpt)
    ours = load_weights(tf1_ckpt, include_optimizer=True)
    assert {k for k in ours if is_slot(k)} == {k for k in theirs if is_slot(k)}
    slot = "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel/Adam_1"
    assert np.array_equal(ours[slot].array, theirs[slot])
    # bookkeeping tensors only when named
    step = load_weights(tf1_ckpt, names=["global_step"])["global_step"]
    assert step.array == theirs["global_step"]


def test_checkpoint_paths_and_detection(tf1_ckpt):
    index = tf1_ckpt.parent / (tf1_ckpt.name + ".index")
    for path in (tf1_ckpt, index, tf1_ckpt.parent):
        assert detect_format(path) == "tf-checkpoint"
        with open_weights(path) as src:
            assert "softmax/softmax_w" in src


def test_missing_names_list_close_matches(tf1_ckpt):
    with pytest.raises(MissingTensorError) as err:
        load_weights(tf1_ckpt, names=["softmax/softmax_w", "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernal", "nope"])
    msg = str(err.value)
    assert "2 tensor name(s) not found" in msg
    assert "did you mean 'rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel'" in msg
    assert "'nope'" in msg and "tf2rt inspect" in msg


def test_tf2_keras_checkpoint_readable_names(tf, tf2_ckpt):
    theirs = tf_tensors(tf, tf2_ckpt)
    with open_weights(tf2_ckpt) as src:
        infos = {i.name: i for i in src.infos() if i.kind == "variable"}
    assert {"lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel", "gru/gru_cell/bias", "dense/kernel"} <= set(infos)
    ours = load_weights(tf2_ckpt)
    assert set(ours) == set(infos)
    for name, w in ours.items():
        assert w.array.tobytes() == theirs[infos[name].key].tobytes(), name
    # the stored object-based key works as a name too
    key = infos["lstm/lstm_cell/kernel"].key
    assert key.endswith(".ATTRIBUTES/VARIABLE_VALUE")
    assert np.array_equal(load_weights(tf2_ckpt, names=[key])[key].array, theirs[key])


@pytest.mark.parametrize("version", [1, 2])
def test_dump_checkpoint_like_dumptfwts(tf, tf1_ckpt, tmp_path, version):
    """On the float32 variables, `dump` writes exactly the bytes dumpTFWts would."""
    theirs = {k: v for k, v in tf_tensors(tf, tf1_ckpt).items() if not is_slot(k) and k != "global_step"}
    out = dump_weights(tf1_ckpt, tmp_path / ("m.wts" if version == 1 else "m.wts2"))
    assert out.read_bytes() == dumptfwts_reference(theirs, v1=version == 1)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_dump_checkpoint_to_npz_and_safetensors(tf, tf2_ckpt, tmp_path, suffix):
    theirs = tf_tensors(tf, tf2_ckpt)
    with open_weights(tf2_ckpt) as src:
        keys = {i.name: i.key for i in src.infos()}
    out = dump_weights(tf2_ckpt, tmp_path / ("w" + suffix), include_optimizer=True)
    back = load_weights(out)
    assert "lstm/lstm_cell/kernel" in back and any("Adam" in k or "/m/" in k for k in back)
    for name, w in back.items():
        assert w.array.tobytes() == theirs[keys[name]].tobytes(), name


def test_dump_selected_names_and_dict_source(tf1_ckpt, tmp_path):
    out = dump_weights(tf1_ckpt, tmp_path / "sel.npz", names=["softmax/softmax_b"])
    assert list(load_weights(out)) == ["softmax/softmax_b"]
    with pytest.raises(MissingTensorError, match="softmax_q"):
        dump_weights({"softmax_w": np.zeros(2)}, tmp_path / "x.npz", names=["softmax_q"])
    with pytest.raises(FormatError, match="cannot tell"):
        dump_weights(tf1_ckpt, tmp_path / "out.weights")


def test_dump_onto_its_own_source_is_refused(tmp_path):
    path = dump_weights({"a": np.arange(3, dtype=np.float32)}, tmp_path / "a.npz")
    with pytest.raises(Tf2rtError, match="is the input .* choose another output path"):
        dump_weights(path, path)
    assert load_weights(path)["a"].array.tolist() == [0.0, 1.0, 2.0]


def test_failed_dump_leaves_no_file(tmp_path):
    tensors = {"a": np.zeros(2, np.float32), "z": np.zeros(2, np.int64)}
    with pytest.raises(Tf2rtError, match="convert"):
        dump_weights(tensors, tmp_path / "x.wts2")
    assert not (tmp_path / "x.wts2").exists()
    # an error found while writing (a value outside int32) removes the partial file
    tensors["z"] = np.array([1, 2**40], np.int64)
    with pytest.raises(Tf2rtError, match="do not fit"):
        dump_weights(tensors, tmp_path / "x.wts2", convert=True)
    assert not (tmp_path / "x.wts2").exists()


def test_exclude_and_all_problems_in_one_error(tf1_ckpt, tmp_path):
    out = dump_weights(tf1_ckpt, tmp_path / "ex.npz", exclude=["softmax/softmax_w", "softmax/softmax_b"])
    names = set(load_weights(out))
    assert names and not any(n.startswith("softmax/") for n in names)
    with pytest.raises(MissingTensorError, match="softmax_ww"):
        dump_weights(tf1_ckpt, tmp_path / "ex2.npz", exclude=["softmax/softmax_ww"])
    tensors = {"a": np.zeros(2, np.float64), "b": np.zeros(2, np.complex64), "c": np.zeros(1, np.float32)}
    with pytest.raises(Tf2rtError) as err:
        dump_weights(tensors, tmp_path / "x.wts2")
    msg = str(err.value)
    assert "2 tensors cannot be written" in msg and "'a'" in msg and "'b'" in msg and "--exclude" in msg
    back = load_weights(dump_weights(tensors, tmp_path / "x.wts2", exclude=["b"], convert=True))
    assert set(back) == {"a", "c"} and back["a"].dtype == np.float32
