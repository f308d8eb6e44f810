"""TensorFlow-made checkpoints for the reader tests, plus a tiny table writer for rewrites.

Every generator takes an output directory and returns the checkpoint prefix (or directory).
Variables get random values so every gate, bias and slot differs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SEED = 1234


def _session_config(tf1, cpus: int = 1):
    return tf1.ConfigProto(device_count={"CPU": cpus}, inter_op_parallelism_threads=1, intra_op_parallelism_threads=1)


def tf1_rnn(tf, out: Path) -> Path:
    """TF1 graph: BasicLSTMCell, GRUCell and a 2-layer MultiRNNCell via dynamic_rnn, Adam slots."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(SEED)
        x = tf1.placeholder(tf.float32, [2, 5, 3], name="x")
        with tf1.variable_scope("lstm"):
            y1, _ = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.BasicLSTMCell(4, forget_bias=1.0), x, dtype=tf.float32)
        with tf1.variable_scope("gru"):
            y2, _ = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.GRUCell(3), x, dtype=tf.float32)
        cells = [tf1.nn.rnn_cell.BasicLSTMCell(n) for n in (4, 2)]
        y3, _ = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.MultiRNNCell(cells), x, dtype=tf.float32)
        w = tf1.get_variable("softmax/softmax_w", [2, 7])
        b = tf1.get_variable("softmax/softmax_b", [7], initializer=tf1.random_normal_initializer())
        loss = tf.reduce_sum(y1) + tf.reduce_sum(y2) + tf.reduce_sum(tf.matmul(y3[:, -1], w) + b)
        step = tf1.train.get_or_create_global_step()
        train = tf1.train.AdamOptimizer(0.01).minimize(loss, global_step=step)
        saver = tf1.train.Saver()
        with tf1.Session(graph=g, config=_session_config(tf1)) as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(train, {x: np.random.default_rng(SEED).normal(size=(2, 5, 3))})
            return Path(saver.save(sess, str(out / "rnn.ckpt"), global_step=1))


# dtype name -> value maker; every memcpy-able dtype TF variables can hold
DTYPE_VALUES = {
    "float16": lambda r: r.normal(size=(3, 2)).astype(np.float16),
    "float32": lambda r: r.normal(size=(2, 3)).astype(np.float32),
    "float64": lambda r: r.normal(size=(4,)),
    "bfloat16": lambda r: r.normal(size=(2, 2)).astype(np.float32),  # cast by TF
    "int8": lambda r: r.integers(-128, 127, size=(5,), dtype=np.int8),
    "int16": lambda r: r.integers(-30000, 30000, size=(2, 2), dtype=np.int16),
    "int32": lambda r: r.integers(-(2**31), 2**31 - 1, size=(3,), dtype=np.int32),
    "int64": lambda r: r.integers(-(2**62), 2**62, size=(2,), dtype=np.int64),
    "uint8": lambda r: r.integers(0, 255, size=(6,), dtype=np.uint8),
    "uint16": lambda r: r.integers(0, 65535, size=(3,), dtype=np.uint16),
    "uint32": lambda r: r.integers(0, 2**32 - 1, size=(3,), dtype=np.uint32),
    "uint64": lambda r: r.integers(0, 2**63, size=(2,), dtype=np.uint64) * 2 + 1,
    "bool": lambda r: r.integers(0, 2, size=(7,)).astype(bool),
    "complex64": lambda r: (r.normal(size=(2,)) + 1j * r.normal(size=(2,))).astype(np.complex64),
    "complex128": lambda r: r.normal(size=(3,)) + 1j * r.normal(size=(3,)),
}


# SaveSlices (the V1 writer) cannot serialize these dtypes.
V1_UNSAVABLE = {"bfloat16", "uint32", "uint64"}


def misc_values() -> dict[str, np.ndarray]:
    """The values `tf1_misc` saves, by variable name (bfloat16 given as float32 before the cast)."""
    rng = np.random.default_rng(SEED)
    values = {f"dtypes/{name}": make(rng) for name, make in DTYPE_VALUES.items()}
    values["strings/vec"] = np.array([b"hello", b"", b"\x00\xffbytes" * 20, "\u00fcn\u00ef".encode()], dtype=object)
    values["strings/scalar"] = np.array(b"scalar string", dtype=object)
    values["scalar"] = np.array(2.5, np.float32)
    values["empty"] = np.zeros((0, 3), np.float32)
    values["part/kernel"] = rng.normal(size=(10, 4)).astype(np.float32)
    values["part/wide"] = rng.normal(size=(3, 7)).astype(np.float32)
    return values


def _part_initializer(tf, value: np.ndarray):
    """An initializer giving each partition its piece of `value`."""

    def init(shape, dtype=None, partition_info=None):
        offset = partition_info.var_offset if partition_info is not None else [0] * len(shape)
        return tf.constant(value[tuple(slice(o, o + n) for o, n in zip(offset, shape))])

    return init


def tf1_misc(tf, out: Path, version: str = "V2") -> Path:
    """Every dtype, strings, a scalar, an empty tensor and two partitioned variables."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    values = misc_values()
    with g.as_default():
        for name, value in values.items():
            if version == "V1" and name.split("/")[-1] in V1_UNSAVABLE:
                continue
            if name.startswith("part/"):
                axis = 0 if name == "part/kernel" else 1
                tf1.get_variable(
                    name, value.shape, initializer=_part_initializer(tf, value),
                    partitioner=tf1.fixed_size_partitioner(3 if axis == 0 else 2, axis=axis),
                )
                continue
            init = tf.constant(value)
            if name == "dtypes/bfloat16":
                init = tf.cast(init, tf.bfloat16)
            tf1.Variable(init, name=name)
        write_version = tf1.train.SaverDef.V1 if version == "V1" else tf1.train.SaverDef.V2
        saver = tf1.train.Saver(write_version=write_version)
        with tf1.Session(graph=g, config=_session_config(tf1)) as sess:
            sess.run(tf1.global_variables_initializer())
            return Path(saver.save(sess, str(out / "misc.ckpt"), write_meta_graph=False))


def tf1_sharded(tf, out: Path, version: str = "V2") -> Path:
    """A sharded save: variables on three CPU devices, Saver(sharded=True)."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(SEED)
        for d in range(3):
            with tf.device(f"/cpu:{d}"):
                tf1.get_variable(f"dev{d}/w", [3 + d, 2])
                tf1.get_variable(f"dev{d}/b", [2 + d], initializer=tf1.random_normal_initializer())
        write_version = tf1.train.SaverDef.V1 if version == "V1" else tf1.train.SaverDef.V2
        saver = tf1.train.Saver(sharded=True, write_version=write_version)
        with tf1.Session(graph=g, config=_session_config(tf1, cpus=3)) as sess:
            sess.run(tf1.global_variables_initializer())
            return Path(saver.save(sess, str(out / "sharded.ckpt"), write_meta_graph=False))


def tf2_sharded(tf, out: Path) -> Path:
    """tf.train.Checkpoint with MaxShardSizePolicy: six shards, large variables split into slices."""
    rng = np.random.default_rng(SEED)
    ckpt = tf.train.Checkpoint(
        kernel=tf.Variable(rng.normal(size=(250, 4)).astype(np.float32)),
        bias=tf.Variable(rng.normal(size=(300, 3))),
        words=tf.Variable([b"x", b"yy", b"zzz"]),
    )
    policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=2000)
    return Path(ckpt.write(str(out / "tf2_sharded"), options=tf.train.CheckpointOptions(experimental_sharding_callback=policy)))


def keras_rnn_checkpoint(tf, keras, out: Path, name: str) -> tuple[Path, dict[str, np.ndarray]]:
    """tf.train.Checkpoint of a small LSTM/GRU Keras model after one Adam step."""
    inputs = keras.Input((5, 3))
    h = keras.layers.LSTM(4, return_sequences=True, name="lstm")(inputs)
    h = keras.layers.GRU(3, name="gru")(h)
    outputs = keras.layers.Dense(2, name="dense")(h)
    model = keras.Model(inputs, outputs)
    opt = keras.optimizers.Adam(0.01)
    model.compile(optimizer=opt, loss="mse")
    rng = np.random.default_rng(SEED)
    model.fit(rng.normal(size=(4, 5, 3)).astype(np.float32), rng.normal(size=(4, 2)).astype(np.float32), verbose=0, epochs=1)
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt)
    return Path(ckpt.write(str(out / name))), keras_weights(model)


def keras_weights(model) -> dict[str, np.ndarray]:
    """The model's variables by TF1-style name (Keras 3 `path`, tf.keras `name` without ':0')."""
    out = {}
    for w in model.weights:
        name = getattr(w, "path", None) or w.name
        out[name.split(":")[0]] = np.asarray(w.numpy())
    return out


def saved_model(tf, out: Path) -> Path:
    """A SavedModel directory of a tf.Module with two variables."""
    module = tf.Module()
    module.w = tf.Variable(np.random.default_rng(SEED).normal(size=(3, 2)).astype(np.float32), name="w")
    module.b = tf.Variable(np.arange(2, dtype=np.float32) + 0.5, name="b")
    module.f = tf.function(lambda x: tf.matmul(x, module.w) + module.b, input_signature=[tf.TensorSpec([None, 3])])
    path = out / "saved_model"
    tf.saved_model.save(module, str(path))
    return path


# -- a minimal table writer (test helper for rewritten bundles) ----------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _block(items: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    out = bytearray()
    restarts = []
    prev = b""
    for i, (k, v) in enumerate(items):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(prev), len(k)) and prev[shared] == k[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(k) - shared) + _varint(len(v)) + k[shared:] + v
        prev = k
    if not restarts:
        restarts = [0]
    for r in restarts:
        out += r.to_bytes(4, "little")
    out += len(restarts).to_bytes(4, "little")
    return bytes(out)


def write_table(path: Path, items: list[tuple[bytes, bytes]], block_entries: int = 16, snappy: bool = False) -> None:
    """Write a table; google_crc32c computes trailer CRCs, cramjam compresses if `snappy`."""
    import cramjam
    import google_crc32c

    def masked(data: bytes) -> bytes:
        c = google_crc32c.value(data)
        return ((((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF).to_bytes(4, "little")

    out = bytearray()

    def emit(block: bytes) -> bytes:
        ctype = 0
        if snappy:
            block = bytes(cramjam.snappy.compress_raw(block))
            ctype = 1
        handle = _varint(len(out)) + _varint(len(block))
        out.extend(block + bytes([ctype]) + masked(block + bytes([ctype])))
        return handle

    index = []
    for start in range(0, len(items), block_entries):
        chunk = items[start : start + block_entries]
        handle = emit(_block(chunk, 16))
        index.append((chunk[-1][0], handle))
    meta_handle = emit(_block([], 1))
    index_handle = emit(_block(index, 1))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + (0xDB4775248B80FB57).to_bytes(8, "little")
    out += footer
    path.write_bytes(bytes(out))


def read_raw_table(path: Path) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a table, via the reader under test's block parser."""
    from tf2rt.weights.sstable import Table

    with Table(path) as t:
        return list(t.items())


def copy_bundle(prefix: Path, dst_prefix: Path) -> None:
    for f in prefix.parent.iterdir():
        if f.name.startswith(prefix.name + "."):
            os.link(f, dst_prefix.parent / (dst_prefix.name + f.name[len(prefix.name) :]))
