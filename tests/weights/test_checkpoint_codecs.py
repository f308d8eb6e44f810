"""CRC32C, Snappy and slice-key encoding against independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf2rt.errors import FormatError
from tf2rt.weights import crc32c, snappy
from tf2rt.weights.tf_dtypes import encode_slice_key

import cramjam  # test oracle for Snappy (test extra)
import google_crc32c  # test oracle for CRC32C (test extra)


# -- CRC32C -------------------------------------------------------------------------------
KNOWN = [  # RFC 3720 B.4 and the usual check value
    (b"123456789", 0xE3069283),
    (b"\x00" * 32, 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (b"", 0),
]


@pytest.mark.parametrize("data,expected", KNOWN)
def test_crc_known_vectors(data, expected):
    assert crc32c.numpy_value(data) == expected
    assert crc32c.value(data) == expected


@pytest.mark.parametrize("n", [1, 63, 255, 256, 257, 1000, 4096 + 3, 65536 + 5, (4 << 20) - 1, (4 << 20) + 77, 9_000_001])
def test_numpy_crc_matches_google_crc32c(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    assert crc32c.numpy_value(data) == google_crc32c.value(data.tobytes())
    split = n // 3
    assert crc32c.numpy_value(data[split:], crc32c.numpy_value(data[:split])) == google_crc32c.value(data.tobytes())


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 0xFFFFFFFF))
def test_numpy_crc_extends_like_google(data, start):
    assert crc32c.numpy_value(data, start) == google_crc32c.extend(start, data)


def test_crc_accepts_arrays_and_memoryviews():
    a = np.arange(1000, dtype=np.float32)
    expected = google_crc32c.value(a.tobytes())
    assert crc32c.value(a) == expected
    assert crc32c.value(memoryview(a.tobytes())) == expected
    assert crc32c.value(a, use_fast=False) == expected
    assert crc32c.value(a[::2]) == google_crc32c.value(a[::2].tobytes())


def test_mask_roundtrip_and_value():
    # masked CRC of "123456789" as TF's crc32c::Mask computes it: rotate right 15, add delta
    c = 0xE3069283
    assert crc32c.mask(c) == ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
    for x in (0, 1, 0xFFFFFFFF, 0x12345678, c):
        assert crc32c.unmask(crc32c.mask(x)) == x


# -- Snappy -------------------------------------------------------------------------------
def _samples():
    rng = np.random.default_rng(7)
    yield b""
    yield b"a"
    yield b"abc" * 5000  # long overlapping copies
    yield rng.integers(0, 256, 70000, dtype=np.uint8).tobytes()  # incompressible, long literals
    yield (b"tensor/name/kernel" + bytes(20)) * 300
    yield np.repeat(rng.integers(0, 4, 5000, dtype=np.uint8), rng.integers(1, 80, 5000)).tobytes()


@pytest.mark.parametrize("data", list(_samples()), ids=lambda d: f"{len(d)}B")
def test_snappy_decodes_cramjam_output(data):
    compressed = bytes(cramjam.snappy.compress_raw(data))
    assert snappy.decompress(compressed) == data


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"bc", b"xyz" * 7, b"\x00" * 70, b"q"]), max_size=400))
def test_snappy_property(parts):
    data = b"".join(parts)
    assert snappy.decompress(bytes(cramjam.snappy.compress_raw(data))) == data


@pytest.mark.parametrize(
    "bad",
    [
        b"",  # no length
        b"\xff\xff\xff\xff\xff\xff",  # varint too long
        b"\x05\x00a",  # literal shorter than declared output
        b"\x03\x08ab",  # literal longer than input
        b"\x04\x00a\x01\x05",  # copy offset 5 > output so far
        b"\x04\x00a\x05\x00",  # copy offset 0
        b"\xff\xff\xff\x7f\x00a",  # absurd declared length
        b"\x02\x00a\x01\x01\x01",  # output exceeds declared length
    ],
)
def test_snappy_rejects_corrupt_input(bad):
    with pytest.raises(FormatError):
        snappy.decompress(bad)


# -- slice keys -----------------------------------------------------------------------------
def test_slice_keys_match_tensorflow_encoding(tf):
    """TF's checkpoint_ops expose the same encoding through partitioned-variable saves;
    compare with keys TensorFlow actually wrote for a variety of extents."""
    import tempfile
    from pathlib import Path

    from tf2rt.weights.sstable import Table

    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        # 200 rows in 3 parts gives starts 0, 67, 134 (above 63: two-byte encodings)
        tf1.get_variable("big/w", [200, 3], partitioner=tf1.fixed_size_partitioner(3))
        tf1.get_variable("z", [5, 100000], partitioner=tf1.fixed_size_partitioner(4, axis=1))
        saver = tf1.train.Saver()
        with tf1.Session(graph=g) as sess, tempfile.TemporaryDirectory() as d:
            sess.run(tf1.global_variables_initializer())
            prefix = saver.save(sess, str(Path(d) / "m"), write_meta_graph=False)
            with Table(prefix + ".index") as t:
                stored = {k for k, _ in t.items() if k[:1] == b"\x00"}
    ours = set()
    for start, length in [(0, 67), (67, 67), (134, 66)]:
        ours.add(encode_slice_key("big/w", [(start, length), (0, 3)]))
    for start, length in [(0, 25000), (25000, 25000), (50000, 25000), (75000, 25000)]:
        ours.add(encode_slice_key("z", [(0, 5), (start, length)]))
    assert ours == stored


def test_slice_key_escapes_and_large_numbers():
    key = encode_slice_key("a\x00b\xff", [(0, -1)])  # U+00FF is c3 bf in UTF-8
    assert key == b"\x00" + b"a\x00\xffb\xc3\xbf" + b"\x00\x01" + b"\x01\x01" + b"\x80" + b"\x7f"
    # 2**40 has 41 bits: 6 bytes = header 111111, a 0, then 41 value bits (top one set)
    big = encode_slice_key("x", [(1 << 40, 1)])
    assert big.endswith(bytes([0xFD, 0x00, 0x00, 0x00, 0x00, 0x00, 0x81]))
    neg = encode_slice_key("x", [(-(1 << 40), 1)])
    assert neg.endswith(bytes([0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x81]))


# -- object paths and kinds ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["a.b/c..d/.S", "plain", "layer_with_weights-0", ".", "/", "..S", "x.Sy"])
def test_unescape_inverts_tensorflow_escaping(tf, name):
    from tensorflow.python.trackable import trackable_utils

    from tf2rt.weights.object_graph import key_path, unescape_local_name

    escaped = trackable_utils.escape_local_name(name)
    assert unescape_local_name(escaped) == name
    path, attr = key_path(f"model/{escaped}/.ATTRIBUTES/VARIABLE_VALUE")
    assert path == ["model", name] and attr == "VARIABLE_VALUE"


@pytest.mark.parametrize(
    "name,kind",
    [
        ("rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel", "variable"),
        ("dense/kernel/Adam_1", "optimizer_slot"),
        ("dense/kernel/Momentum", "optimizer_slot"),
        ("dense/bias/RMSProp_1", "optimizer_slot"),
        ("training/Adam/dense/kernel/m", "optimizer_slot"),
        ("beta1_power", "optimizer_slot"),
        ("beta2_power_1", "optimizer_slot"),
        ("global_step", "bookkeeping"),
        ("model/lr", "variable"),  # a user variable that merely looks like a hyper-parameter
        ("Adam", "variable"),
    ],
)
def test_tf1_name_kinds(name, kind):
    from tf2rt.weights.object_graph import classify

    assert classify(name) == kind
