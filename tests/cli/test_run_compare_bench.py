"""`tf2rt run`, `tf2rt compare`, `tf2rt bench` end to end on a small engine file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tf2rt.cli import main
from tf2rt.engine import build_engine
from tf2rt.network import Network


@pytest.fixture(scope="module")
def engine_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    net = Network("charrnn-ish")
    tok = net.add_input("tokens", "int32", (None, 3))
    emb = net.add_gather(net.add_constant((9, 4), rng.standard_normal((9, 4)), name="embedding").output, tok,
                         name="embed")
    rnn = net.add_rnn_v2(emb.output, 1, 5, 3, "gru", name="rnn")
    for g in ("update", "reset", "hidden"):
        rnn.set_weights_for_gate(0, g, True, rng.standard_normal((5, 4)))
        rnn.set_weights_for_gate(0, g, False, rng.standard_normal((5, 5)))
        rnn.set_bias_for_gate(0, g, False, rng.standard_normal(5))
    rnn.seq_lengths = net.add_input("lens", "int32", (None,))
    net.mark_output(net.add_fully_connected(rnn.output, 9, rng.standard_normal((5, 9)), name="logits").output)
    p = tmp_path_factory.mktemp("eng") / "m.onnx"
    build_engine(net).save(p)
    return p


def test_run(engine_path, tmp_path, capsys):
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    feeds = {"tokens": np.array([[1, 2, 8], [0, 0, 3]], np.int32), "lens": np.array([3, 2], np.int32)}
    np.savez(inp, **feeds)
    assert main(["run", str(engine_path), "--inputs", str(inp), "--outputs", str(out)]) == 0
    assert "logits: float32[2, 3, 9]" in capsys.readouterr().out
    got = np.load(out)["logits"]
    from tf2rt.engine import load_engine

    np.testing.assert_allclose(got, load_engine(engine_path).run(feeds, backend="reference")["logits"], atol=1e-5)
    assert main(["run", str(engine_path), "--inputs", str(inp), "--backend", "reference"]) == 0


@pytest.mark.parametrize("bad,match", [
    ({"tokens": np.zeros((1, 3), np.int32)}, "missing input.*'lens'"),
    ({"tokens": np.zeros((1, 3), np.int32), "lens": np.ones(1, np.int32), "x": np.zeros(1)}, "unknown input.*'x'"),
    ({"tokens": np.zeros((1, 4), np.int32), "lens": np.ones(1, np.int32)}, "input 'tokens' has shape \\[1, 4\\]"),
    ({"tokens": np.zeros((1, 3), np.float32), "lens": np.ones(1, np.int32)}, "input 'tokens' has dtype float32"),
])
def test_run_bad_inputs(engine_path, tmp_path, capsys, bad, match):
    import re

    inp = tmp_path / "in.npz"
    np.savez(inp, **bad)
    assert main(["run", str(engine_path), "--inputs", str(inp)]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_run_not_an_engine(tmp_path, capsys):
    p = tmp_path / "x.onnx"
    p.write_bytes(b"not an engine")
    np.savez(tmp_path / "in.npz", a=np.zeros(1))
    assert main(["run", str(p), "--inputs", str(tmp_path / "in.npz")]) == 2
    assert "not an ONNX engine file" in capsys.readouterr().err


def test_compare_passes_and_reports(engine_path, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    rc = main(["compare", str(engine_path), "--backends", "onnxruntime,reference", "--batch", "3", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "min atol to pass" in text and "OK" in text
    report = json.loads(out.read_text())
    row = report["results"]["reference"][0]
    assert row["name"] == "logits" and row["shape"] == [3, 3, 9] and row["passed"] and row["max_abs"] < 1e-5


def test_compare_mismatch_exit_status(engine_path, capsys, monkeypatch):
    """A backend whose outputs are off by 1e-3 fails at atol 1e-5 and reports min atol ~1e-3."""
    import sys
    import types

    from tf2rt import backends

    def load(engine, **options):
        inner = backends.load(engine, "reference")

        class Noisy(backends.Runner):
            def run(self, feeds):
                return {k: v + np.float32(1e-3) for k, v in inner.run(feeds).items()}

        return Noisy(engine)

    mod = types.ModuleType("tf2rt_test_noisy_backend")
    mod.available, mod.load = (lambda: True), load
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(backends.BACKENDS, "noisy", mod.__name__)
    rc = main(["compare", str(engine_path), "--backends", "reference,noisy", "--seed", "3", "--batch", "2"])
    text = capsys.readouterr().out
    assert rc == 1 and "MISMATCH" in text
    row = [line for line in text.splitlines() if line.startswith("| logits")][0]
    assert float(row.split("|")[5]) == pytest.approx(1e-3, rel=0.05)  # min atol to pass


def test_compare_against_unknown_kind(engine_path, capsys):
    assert main(["compare", str(engine_path), "--against", "pt:model.pt"]) == 2
    assert "unknown --against kind 'pt'" in capsys.readouterr().err


def test_bench(engine_path, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", str(engine_path), "--iterations", "20", "--warmup", "2", "--batch", "2",
                 "--threads", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "median ms" in printed
    stats = json.loads(out.read_text())
    assert stats["providers"] and all(f"  {p}" in printed for p in stats["providers"])
    assert stats["batch"] == 2 and stats["iterations"] == 20
    assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
    assert stats["throughput_per_s"] == pytest.approx(2e3 / stats["median_ms"])
    assert main(["bench", str(engine_path), "--backend", "reference", "--iterations", "3", "--warmup", "0"]) == 0


def test_compare_and_bench_with_input_file(engine_path, tmp_path, capsys):
    inp = tmp_path / "in.npz"
    np.savez(inp, tokens=np.array([[4, 5, 6]], np.int32), lens=np.array([2], np.int32))
    assert main(["compare", str(engine_path), "--inputs", str(inp)]) == 0
    assert "[1, 3, 9]" in capsys.readouterr().out
    assert main(["bench", str(engine_path), "--inputs", str(inp), "--iterations", "5", "--warmup", "1",
                 "--no-spinning", "--io-binding"]) == 0
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses the value
        main(["bench", str(engine_path), "--iterations", "0"])
    assert exit_info.value.code == 2
    np.savez(inp, tokens=np.array([[4, 5, 6]], np.int32))
    assert main(["compare", str(engine_path), "--inputs", str(inp)]) == 2
    assert "missing input(s) 'lens'" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    assert main(["run", str(engine_path), "--inputs", str(tmp_path / "bad.npz")]) == 2
    assert "not a readable .npz" in capsys.readouterr().err
