"""Path resolution, rewritten bundles (big-endian, Snappy index) and damaged files.

Rewritten bundles are re-encoded with TensorFlow's own protobuf classes and read by
TensorFlow as well, so TensorFlow stays the oracle for what they hold.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import ckpt_fixtures as F
import google_crc32c  # test oracle for CRC32C (test extra)
from tf2rt.errors import ChecksumError, FormatError, Tf2rtError
from tf2rt.weights.sstable import Table
from tf2rt.weights.tf_checkpoint import latest_checkpoint, looks_like_checkpoint, open_checkpoint


def _numeric_ckpt(tf, out: Path) -> Path:
    """A TF1 checkpoint with a variable of every dtype, strings, and a partitioned one."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    values = F.misc_values()
    with g.as_default():
        for name, value in values.items():
            if name.startswith(("dtypes/", "strings/")):
                init = tf.constant(value)
                tf1.Variable(tf.cast(init, tf.bfloat16) if name.endswith("bfloat16") else init, name=name)
        tf1.get_variable(
            "part/kernel", [10, 4], initializer=F._part_initializer(tf, values["part/kernel"]),
            partitioner=tf1.fixed_size_partitioner(3),
        )
        saver = tf1.train.Saver()
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            return Path(saver.save(sess, str(out / "num.ckpt"), write_meta_graph=False))


@pytest.fixture(scope="module")
def base(tf, tmp_path_factory):
    out = tmp_path_factory.mktemp("files")
    prefix = _numeric_ckpt(tf, out)
    ckpt = tf.train.Checkpoint(a=tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3) + 0.25), b=tf.Variable([7, 8, 9]))
    saved = out / "tf2"
    first = ckpt.save(str(saved / "ckpt"))
    ckpt.a.assign_add(tf.ones((2, 3)))
    second = ckpt.save(str(saved / "ckpt"))
    return {"num": prefix, "tf2_dir": saved, "first": Path(first), "second": Path(second)}


def _copy(prefix: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in prefix.parent.glob(prefix.name + ".*"):
        shutil.copy(f, dst / f.name)
    return dst / prefix.name


def _read_all(path, verify=True) -> dict[str, np.ndarray]:
    with open_checkpoint(path, verify=verify) as src:
        return {i.key: src.read(i.key) for i in src.infos()}


# -- path resolution --------------------------------------------------------------------
def test_path_forms(base):
    prefix = base["num"]
    expected = _read_all(prefix)
    data = next(prefix.parent.glob(prefix.name + ".data-*"))
    for form in (prefix, f"{prefix}.index", data, str(prefix), f"{prefix}.meta"):
        got = _read_all(form)
        assert got.keys() == expected.keys()
        assert looks_like_checkpoint(form)


def test_directory_picks_latest_like_tensorflow(tf, base):
    d = base["tf2_dir"]
    assert Path(tf.train.latest_checkpoint(str(d))) == base["second"]
    assert latest_checkpoint(d) == base["second"]
    with open_checkpoint(d) as src:
        a = src.read("a")
    np.testing.assert_array_equal(a, tf.train.load_checkpoint(str(base["second"])).get_tensor("a/.ATTRIBUTES/VARIABLE_VALUE"))
    assert looks_like_checkpoint(d)
    with open_checkpoint(d / "checkpoint") as src:  # the state file itself works too
        assert src.prefix == base["second"]
    with pytest.raises(FormatError, match="found ckpt-1, ckpt-2"):  # the save prefix, not a checkpoint
        open_checkpoint(d / "ckpt")
    with open_checkpoint(d) as src:
        kinds = {i.name: i.kind for i in src.infos()}
    assert kinds == {"a": "variable", "b": "variable", "save_counter": "bookkeeping",
                     "_CHECKPOINTABLE_OBJECT_GRAPH": "bookkeeping"}


def test_reading_one_tensor_costs_only_that_tensor(tf, tmp_path):
    """Listing and reading a small tensor of a 32 MB checkpoint allocates far less than 32 MB."""
    import tracemalloc

    ckpt = tf.train.Checkpoint(big=tf.Variable(tf.zeros([2048, 4096])), small=tf.Variable([1.0, 2.0, 3.0]))
    prefix = ckpt.write(str(tmp_path / "big"))
    tracemalloc.start()
    try:
        with open_checkpoint(prefix) as src:
            assert src.info("big").nbytes == 32 << 20
            small = src.read("small")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(small, [1.0, 2.0, 3.0])
    assert peak < 1 << 20, peak


def test_checkpoint_file_with_moved_directory(base, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(base["tf2_dir"], moved)
    # tf.train.Checkpoint writes a relative path, which keeps working after the move.
    assert 'model_checkpoint_path: "ckpt-2"' in (moved / "checkpoint").read_text()
    assert latest_checkpoint(moved) == moved / "ckpt-2"
    # TF1 Savers wrote absolute paths, which point at the old place after a move.
    (moved / "checkpoint").write_text('model_checkpoint_path: "/nonexistent/dir/ckpt-1"\n')
    assert latest_checkpoint(moved) == moved / "ckpt-1"
    (moved / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-1"\n')
    assert latest_checkpoint(moved) == moved / "ckpt-2"
    (moved / "checkpoint").write_text("garbage\n")
    with pytest.raises(FormatError, match="model_checkpoint_path"):
        open_checkpoint(moved)


def test_saved_model_directory(tf, tmp_path):
    path = F.saved_model(tf, tmp_path)
    for form in (path, path / "variables"):
        with open_checkpoint(form) as src:
            np.testing.assert_array_equal(src.read("b"), np.arange(2, dtype=np.float32) + 0.5)


@pytest.mark.parametrize("name", ["nothing.ckpt", "dir"])
def test_missing_paths(tmp_path, name):
    (tmp_path / "dir").mkdir()
    with pytest.raises(FormatError, match="checkpoint"):
        open_checkpoint(tmp_path / name)
    assert not looks_like_checkpoint(tmp_path / name)


def test_not_a_checkpoint_file(tmp_path):
    f = tmp_path / "weights.txt"
    f.write_text("hello " * 100)
    with pytest.raises(FormatError, match="not a TensorFlow checkpoint"):
        open_checkpoint(f)
    fake_index = tmp_path / "fake.index"
    fake_index.write_bytes(b"\0" * 100)
    with pytest.raises(FormatError, match="bad magic"):
        open_checkpoint(fake_index)
    assert not looks_like_checkpoint(fake_index)


# -- damaged files -----------------------------------------------------------------------
def test_flipped_data_byte_names_tensor_and_file(base, tmp_path):
    prefix = _copy(base["num"], tmp_path)
    with open_checkpoint(prefix) as src:
        info = src.info("dtypes/float64")
        offset = info.extra["offset"] + 3
    data = next(tmp_path.glob("num.ckpt.data-*"))
    raw = bytearray(data.read_bytes())
    raw[offset] ^= 0x40
    data.write_bytes(bytes(raw))
    with open_checkpoint(prefix) as src:
        with pytest.raises(ChecksumError) as err:
            src.read("dtypes/float64")
        assert "dtypes/float64" in str(err.value) and data.name in str(err.value)
        src.read("dtypes/float32")  # other tensors stay readable
    with open_checkpoint(prefix, verify=False) as src:
        assert src.read("dtypes/float64").shape == (4,)


def test_flipped_index_byte(base, tmp_path):
    prefix = _copy(base["num"], tmp_path)
    index = Path(f"{prefix}.index")
    raw = bytearray(index.read_bytes())
    raw[20] ^= 0x01
    index.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="CRC"):
        open_checkpoint(prefix)


def test_truncated_files(base, tmp_path):
    prefix = _copy(base["num"], tmp_path)
    index = Path(f"{prefix}.index")
    good = index.read_bytes()
    index.write_bytes(good[: len(good) // 2])
    with pytest.raises(FormatError):
        open_checkpoint(prefix)
    index.write_bytes(good)
    data = next(tmp_path.glob("num.ckpt.data-*"))
    data.write_bytes(data.read_bytes()[:16])
    with open_checkpoint(prefix) as src:
        with pytest.raises(FormatError, match="truncated"):
            for i in src.infos():
                src.read(i.key)


def test_missing_shard(base, tmp_path):
    prefix = _copy(base["num"], tmp_path)
    next(tmp_path.glob("num.ckpt.data-*")).unlink()
    with pytest.raises(FormatError, match="missing 1 data file"):
        open_checkpoint(prefix)


def _rewrite(prefix: Path, dst: Path, change_entry=None, change_header=None, snappy=False, block_entries=16):
    """Re-encode a bundle index with TF's protobuf classes; returns the new prefix."""
    from tensorflow.core.protobuf import tensor_bundle_pb2

    new = _copy(prefix, dst)
    items = []
    for key, value in F.read_raw_table(Path(f"{prefix}.index")):
        if key == b"":
            header = tensor_bundle_pb2.BundleHeaderProto.FromString(value)
            if change_header:
                change_header(header)
            value = header.SerializeToString()
        elif change_entry:
            entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
            change_entry(key, entry)
            value = entry.SerializeToString()
        items.append((key, value))
    F.write_table(Path(f"{new}.index"), items, block_entries=block_entries, snappy=snappy)
    return new


def test_big_endian_bundle(tf, base, tmp_path):
    """Byteswap every tensor, mark the header BIG, recompute CRCs: TF and tf2rt read the same."""
    prefix = base["num"]
    data_path = next(prefix.parent.glob(prefix.name + ".data-*"))
    data = bytearray(data_path.read_bytes())
    itemsizes = {1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 8: 4, 9: 8, 10: 1, 14: 2, 17: 2, 18: 8, 19: 2, 22: 4, 23: 8}

    def masked_crc(data: bytes, start: int = 0) -> int:
        c = google_crc32c.extend(start, data)
        return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    def swap(key, entry):
        if entry.slices or entry.size == 0:
            return
        if entry.dtype == 7:  # strings: varint lengths stay, the lengths' checksum becomes big-endian
            region = bytes(data[entry.offset : entry.offset + entry.size])
            lengths, pos = [], 0
            for _ in range(int(np.prod([d.size for d in entry.shape.dim]))):
                n = shift = 0
                while True:
                    b = region[pos]
                    pos += 1
                    n |= (b & 0x7F) << shift
                    shift += 7
                    if b < 0x80:
                        break
                lengths.append(n)
            length_crc = google_crc32c.value(b"".join(n.to_bytes(4, "big") for n in lengths))
            stored = masked_crc(b"", length_crc).to_bytes(4, "big")
            new_region = region[:pos] + stored + region[pos + 4 :]
            data[entry.offset : entry.offset + entry.size] = new_region
            entry.crc32c = masked_crc(new_region[pos + 4 :], google_crc32c.extend(length_crc, stored))
            return
        unit = itemsizes[entry.dtype]
        chunk = np.frombuffer(bytes(data[entry.offset : entry.offset + entry.size]), dtype=f"<u{unit}") if unit > 1 else None
        if chunk is not None:
            swapped = chunk.byteswap().tobytes()
            data[entry.offset : entry.offset + entry.size] = swapped
            entry.crc32c = masked_crc(swapped)

    def big(header):
        header.endianness = 1

    new = _rewrite(prefix, tmp_path / "be", change_entry=swap, change_header=big)
    next(new.parent.glob(new.name + ".data-*")).write_bytes(bytes(data))
    original = tf.train.load_checkpoint(str(prefix))
    rewritten = tf.train.load_checkpoint(str(new))
    with open_checkpoint(new) as src:
        assert src.big_endian
        for info in src.infos():
            expected = np.asarray(original.get_tensor(info.key))
            theirs = np.asarray(rewritten.get_tensor(info.key))
            ours = src.read(info.key)
            if info.dtype == "string":
                assert theirs.tolist() == expected.tolist()  # TF agrees
                assert ours.tolist() == expected.astype(object).tolist(), info.key
                continue
            assert theirs.tobytes() == expected.tobytes()  # TF agrees
            assert ours.dtype == expected.dtype and ours.dtype.isnative
            assert ours.tobytes() == expected.tobytes(), info.key
        assert "strings/vec" in src


@pytest.mark.parametrize("snappy", [True, False])
def test_rewritten_index_with_small_and_snappy_blocks(tf, base, tmp_path, snappy):
    prefix = base["num"]
    new = _rewrite(prefix, tmp_path / "rw", snappy=snappy, block_entries=3)
    with Table(Path(f"{new}.index")) as table:
        assert len(list(table.items())) > 10
        assert (table.snappy_blocks > 1) == snappy
    rewritten = tf.train.load_checkpoint(str(new))
    with open_checkpoint(new) as src:
        for info in src.infos():
            ours, theirs = src.read(info.key), np.asarray(rewritten.get_tensor(info.key))
            if info.dtype == "string":
                assert ours.tolist() == theirs.astype(object).tolist()
            else:
                assert ours.tobytes() == theirs.tobytes()


def test_absurd_sizes_and_offsets(base, tmp_path):
    def huge(key, entry):
        if key == b"dtypes/float32":
            entry.size = 1 << 60
            entry.shape.dim[0].size = 1 << 58

    new = _rewrite(base["num"], tmp_path / "huge", change_entry=huge)
    with open_checkpoint(new) as src:
        with pytest.raises(FormatError, match="outside|expected"):
            src.read("dtypes/float32")

    def far(key, entry):
        if key == b"dtypes/float32":
            entry.offset = 1 << 40

    new = _rewrite(base["num"], tmp_path / "far", change_entry=far)
    with open_checkpoint(new) as src:
        with pytest.raises(FormatError, match="outside"):
            src.read("dtypes/float32")

    def bad_shard(key, entry):
        if key == b"dtypes/int8":
            entry.shard_id = 7

    with pytest.raises(FormatError, match="shard 7"):
        open_checkpoint(_rewrite(base["num"], tmp_path / "shard", change_entry=bad_shard))


def test_bad_varint_in_entry(base, tmp_path):
    items = F.read_raw_table(Path(f"{base['num']}.index"))
    items = [(k, b"\x08" + b"\xff" * 11 if k == b"dtypes/int8" else v) for k, v in items]
    F.write_table(Path(tmp_path / "bad.index"), items)
    shutil.copy(next(base["num"].parent.glob("num.ckpt.data-*")), tmp_path / "bad.data-00000-of-00001")
    with pytest.raises(FormatError, match="varint"):
        open_checkpoint(tmp_path / "bad")


def test_errors_are_tf2rt_errors():
    assert issubclass(ChecksumError, FormatError) and issubclass(FormatError, Tf2rtError)
