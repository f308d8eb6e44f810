"""What scripts rely on: one --json convention on every command, engines under any file name,
foreign ONNX models, optional state inputs, help text, exit statuses and -q/-v."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest

from tf2rt.cli import build_parser, main
from tf2rt.engine import build_engine, load_engine
from tf2rt.network import Network

IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


# -- fixtures -----------------------------------------------------------------------------------
def _state_network(hidden: int = 5, layers: int = 2, vocab: int = 9, seed: int = 0) -> Network:
    """embedding -> LSTM stack with h0/c0 state inputs of dynamic batch -> dense (distinct random weights)."""
    rng = np.random.default_rng(seed)
    net = Network("stateful")
    tok = net.add_input("tokens", "int32", (None, 3))
    emb = net.add_gather(net.add_constant((vocab, 4), rng.standard_normal((vocab, 4)), name="embedding").output,
                         tok, name="embed")
    rnn = net.add_rnn_v2(emb.output, layers, hidden, 3, "lstm", name="rnn")
    for i in range(layers):
        for g in ("input", "forget", "cell", "output"):
            rnn.set_weights_for_gate(i, g, True, rng.standard_normal((hidden, 4 if i == 0 else hidden)))
            rnn.set_weights_for_gate(i, g, False, rng.standard_normal((hidden, hidden)))
            rnn.set_bias_for_gate(i, g, True, rng.standard_normal(hidden))
            rnn.set_bias_for_gate(i, g, False, rng.standard_normal(hidden))
    rnn.hidden_state = net.add_input("rnn/initial_h", "float32", (None, layers, hidden))
    rnn.cell_state = net.add_input("rnn/initial_c", "float32", (None, layers, hidden))
    net.mark_output(net.add_fully_connected(rnn.output, vocab, rng.standard_normal((hidden, vocab)),
                                            name="logits").output, "logits")
    net.mark_output(rnn.get_output(1), "rnn/final_h")
    net.mark_output(rnn.get_output(2), "rnn/final_c")
    return net


@pytest.fixture(scope="module")
def state_engine(tmp_path_factory):
    """An engine with optional state inputs, saved without a file suffix."""
    path = tmp_path_factory.mktemp("eng") / "engine"
    build_engine(_state_network()).save(path)
    return path


def _foreign_model(path, image: bool = False):
    """An ONNX model built by hand (no tf2rt metadata)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    if image:  # [N, 8, 8, 3] -> mean over H, W -> dense 4: a tiny "classifier"
        x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 8, 8, 3])
        y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])
        w = helper.make_tensor("w", TensorProto.FLOAT, [3, 4], rng.standard_normal(12).tolist())
        nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
                 helper.make_node("MatMul", ["m", "w"], ["logits"])]
        graph = helper.make_graph(nodes, "tiny_classifier", [x], [y], [w])
    else:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
        w = helper.make_tensor("w", TensorProto.FLOAT, [3], [0.5, -2.0, 3.0])
        nodes = [helper.make_node("Mul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
        graph = helper.make_graph(nodes, "scale_relu", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="handmade")
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    return _foreign_model(tmp_path_factory.mktemp("foreign") / "scale_relu.onnx")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path_factory.mktemp("img") / "gray.png"
    rng = np.random.default_rng(2)
    cv2.imwrite(str(path), rng.integers(0, 255, (40, 48, 3)).astype(np.uint8))
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- --json on every command --------------------------------------------------------------------
def _commands(tmp_path, state_engine, foreign, photo):
    from tf2rt.cli.demo import EXAMPLE
    from tf2rt.weights.api import dump_weights

    weights = dump_weights({"a/b": np.ones((2, 2), np.float32)}, tmp_path / "w.npz")
    classifier = _foreign_model(tmp_path / "classifier.onnx", image=True)
    return {
        "inspect engine": ["inspect", state_engine],
        "inspect weights": ["inspect", weights],
        "convert": ["convert", EXAMPLE / "model", "-o", tmp_path / "charrnn"],
        "compare": ["compare", state_engine, "--batch", "2"],
        "bench": ["bench", foreign, "--iterations", "3", "--warmup", "1"],
        "classify": ["classify", photo, "--model", classifier, "--topk", "2"],
        "faces detect": ["faces", "detect", photo, "--detector", "haar"],
    }


@pytest.mark.parametrize("command", ["inspect engine", "inspect weights", "convert", "compare", "bench", "classify",
                                     "faces detect"])
def test_json_alone_prints_json_to_stdout_and_json_file_writes_it(command, tmp_path, state_engine, foreign, photo,
                                                                   capsys):
    argv = _commands(tmp_path, state_engine, foreign, photo)[command]
    code, out, _ = _run(capsys, *argv, "--json")
    assert code == 0
    to_stdout = json.loads(out)  # nothing but JSON on stdout
    target = tmp_path / "report.json"
    code, out, _ = _run(capsys, *argv, "--json", target)
    assert code == 0
    in_file = json.loads(target.read_text())
    assert type(in_file) is type(to_stdout)
    assert not out.lstrip().startswith(("{", "[")), "with --json FILE, stdout keeps the human report"
    top = in_file if isinstance(in_file, dict) else in_file[0]
    assert all(IDENT.match(k) for k in top), sorted(top)


def test_json_keys_of_faces_eval_are_identifiers(tmp_path, capsys):
    pytest.importorskip("skimage")
    code, out, _ = _run(capsys, "faces", "eval", "--dataset", "lfw-subset", "--detectors", "haar", "--json")
    assert code == 0
    report = json.loads(out)
    for row in report["results"]:
        assert all(IDENT.match(k) for k in row), sorted(row)
    assert {"detector", "speed_ms", "roc_auc"} <= set(report["results"][0])


def test_json_file_that_is_an_input_is_refused(state_engine, capsys):
    code, _, err = _run(capsys, "inspect", state_engine, "--json", state_engine)
    assert code == 2 and "--json" in err
    assert load_engine(state_engine).inputs  # untouched


# -- engines under any name; foreign ONNX models --------------------------------------------------
def test_engine_without_suffix_works_everywhere(state_engine, tmp_path, capsys):
    code, out, _ = _run(capsys, "inspect", state_engine)
    assert code == 0 and "tf2rt engine" in out
    np.savez(tmp_path / "in.npz", tokens=np.array([[1, 2, 3]], np.int32))
    assert _run(capsys, "run", state_engine, "--inputs", tmp_path / "in.npz")[0] == 0
    assert _run(capsys, "compare", state_engine)[0] == 0
    assert _run(capsys, "bench", state_engine, "--iterations", "2", "--warmup", "0")[0] == 0


def test_convert_without_suffix_then_inspect(tmp_path, capsys):
    from tf2rt.cli.demo import EXAMPLE

    out_path = tmp_path / "charrnn_engine"
    assert _run(capsys, "convert", EXAMPLE / "model", "-o", out_path)[0] == 0
    code, out, _ = _run(capsys, "inspect", out_path)
    assert code == 0 and "tf2rt engine" in out and "optional (zeros)" in out


@pytest.mark.parametrize("name", ["scale_relu.onnx", "scale_relu_model"])
def test_foreign_onnx_model(foreign, tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(foreign.read_bytes())
    code, out, _ = _run(capsys, "inspect", path)
    assert code == 0 and "foreign ONNX model" in out and "produced by handmade" in out
    code, out, _ = _run(capsys, "inspect", path, "--json")
    card = json.loads(out)
    assert card["foreign"] is True and card["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 3]}]
    x = np.array([[-1.0, 1.0, 2.0], [3.0, -4.0, 0.5]], np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    assert _run(capsys, "run", path, "--inputs", tmp_path / "in.npz", "--outputs", tmp_path / "out.npz")[0] == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"], np.maximum(x * [0.5, -2.0, 3.0], 0))
    code, out, _ = _run(capsys, "compare", path, "--batch", "4", "--json")
    assert code == 0 and json.loads(out)["passed"] is True
    code, out, _ = _run(capsys, "bench", path, "--iterations", "2", "--warmup", "0", "--json")
    assert code == 0 and json.loads(out)["batch"] == 1


def test_not_onnx_under_onnx_suffix_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is no protobuf")
    code, _, err = _run(capsys, "inspect", bad)
    assert code == 2 and "not an ONNX model" in err and len(err.strip().splitlines()) == 1


# -- optional state inputs --------------------------------------------------------------------------
def test_state_inputs_are_optional_in_metadata(state_engine):
    engine = load_engine(state_engine)
    assert [s.get("optional") for s in engine.metadata["states"]] == [True, True]


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
def test_run_without_states_equals_explicit_zero_states(state_engine, backend):
    engine = load_engine(state_engine)
    tokens = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    zeros = {"rnn/initial_h": np.zeros((2, 2, 5), np.float32), "rnn/initial_c": np.zeros((2, 2, 5), np.float32)}
    want = engine.run({"tokens": tokens, **zeros}, backend=backend)
    got = engine.run({"tokens": tokens}, backend=backend)
    with engine.runner(backend) as runner:
        got_runner = runner.run({"tokens": tokens})
    for name in engine.output_names:
        np.testing.assert_array_equal(got[name], want[name])
        np.testing.assert_array_equal(got_runner[name], want[name])
    assert np.abs(want["rnn/final_h"]).max() > 0  # states were computed, not just zeros


def test_stream_keeps_carrying_states(state_engine):
    engine = load_engine(state_engine)
    tokens = {"tokens": np.array([[1, 2, 3]], np.int32)}
    stream = engine.stream()
    first, second = stream.step(tokens), stream.step(tokens)
    np.testing.assert_array_equal(first["logits"], engine.run(tokens)["logits"])
    assert not np.allclose(second["logits"], first["logits"])  # the second step started from the carried state
    carried = engine.run({**tokens, "rnn/initial_h": first["rnn/final_h"], "rnn/initial_c": first["rnn/final_c"]})
    np.testing.assert_allclose(second["logits"], carried["logits"], rtol=1e-6, atol=1e-6)


def test_cli_run_compare_bench_with_only_the_models_own_inputs(state_engine, tmp_path, capsys):
    tokens = np.array([[7, 1, 2]], np.int32)
    np.savez(tmp_path / "own.npz", tokens=tokens)
    np.savez(tmp_path / "zeros.npz", tokens=tokens, **{"rnn/initial_h": np.zeros((1, 2, 5), np.float32),
                                                       "rnn/initial_c": np.zeros((1, 2, 5), np.float32)})
    assert _run(capsys, "run", state_engine, "--inputs", tmp_path / "own.npz", "--outputs", tmp_path / "a.npz")[0] == 0
    assert _run(capsys, "run", state_engine, "--inputs", tmp_path / "zeros.npz", "--outputs", tmp_path / "b.npz")[0] == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name])
    code, out, _ = _run(capsys, "compare", state_engine, "--inputs", tmp_path / "own.npz", "--json")
    assert code == 0 and json.loads(out)["passed"] is True
    code, out, _ = _run(capsys, "bench", state_engine, "--inputs", tmp_path / "own.npz", "--iterations", "2",
                        "--warmup", "0", "--json")
    assert code == 0 and json.loads(out)["inputs"]["rnn/initial_h"] == [1, 2, 5]


def test_missing_non_state_input_is_still_an_error(state_engine, tmp_path, capsys):
    np.savez(tmp_path / "states_only.npz", **{"rnn/initial_h": np.zeros((1, 2, 5), np.float32)})
    code, _, err = _run(capsys, "run", state_engine, "--inputs", tmp_path / "states_only.npz")
    assert code == 2 and "missing input(s) 'tokens'" in err


def test_inspect_marks_optional_states(state_engine, capsys):
    code, out, _ = _run(capsys, "inspect", state_engine)
    assert code == 0 and "rnn/initial_h" in out and "optional (zeros)" in out
    code, out, _ = _run(capsys, "inspect", state_engine, "--json")
    assert all(s["optional"] for s in json.loads(out)["states"])


# -- compare's minimum tolerances --------------------------------------------------------------------
def test_compare_reports_min_atol_and_min_rtol():
    from tf2rt.engine.compare import compare_arrays

    ref, cand = np.array([1.0, 2.0, 4.0, 0.0]), np.array([1.0, 2.1, 4.0, 0.0])
    row = compare_arrays("a", ref, cand, atol=0.0, rtol=0.0)
    assert row.min_atol == pytest.approx(0.1) and row.min_rtol == pytest.approx(0.05)
    assert np.allclose(cand, ref, atol=0, rtol=row.min_rtol * (1 + 1e-9))
    assert not np.allclose(cand, ref, atol=0, rtol=row.min_rtol * (1 - 1e-6))
    at_zero = compare_arrays("z", np.array([0.0, 1.0]), np.array([0.01, 1.0]), atol=0.0, rtol=0.0)
    assert at_zero.min_rtol == float("inf")  # no rtol helps where the reference is 0
    assert compare_arrays("z", np.array([0.0, 1.0]), np.array([0.01, 1.0]), atol=0.01, rtol=0.0).min_rtol == 0.0
    assert "min_rtol" in row.to_json()


# -- help, exit statuses, verbosity ------------------------------------------------------------------
def _actions(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def test_every_option_has_help_text():
    missing = [f"{path} {a.option_strings or a.dest}" for path, a in _actions(build_parser(), "tf2rt") if not a.help]
    assert not missing, missing


def test_help_documents_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for line in ("0  success", "1  mismatch", "2  error"):
        assert line in text
    assert "-q, --quiet" in text and "-v, --verbose" in text


def test_quiet_hides_info_lines(tmp_path, capsys):
    from tf2rt.weights.api import dump_weights

    src = dump_weights({"a": np.ones(3, np.float32)}, tmp_path / "w.npz")
    code, _, err = _run(capsys, "dump", src, "-o", tmp_path / "w.wts")
    assert code == 0 and "wrote" in err
    code, _, err = _run(capsys, "-q", "dump", src, "-o", tmp_path / "w2.wts")
    assert code == 0 and err == ""
    code, out, err = _run(capsys, "-q", "compare", tmp_path / "missing.onnx")
    assert code == 2 and "error" in err  # errors are never hidden
    main(["-v", "inspect", str(src)])  # -v is accepted and changes nothing on stdout
    assert "a" in capsys.readouterr().out


# -- damaged files say so ----------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0, 20, 200])
def test_truncated_checkpoint_index_is_reported_as_damaged(tmp_path, capsys, keep):
    import shutil

    from tf2rt.cli.demo import EXAMPLE

    for f in (EXAMPLE / "model").iterdir():
        shutil.copy2(f, tmp_path / f.name)
    index = tmp_path / "charrnn.index"
    index.write_bytes(index.read_bytes()[:keep])
    for target in (tmp_path / "charrnn", index, tmp_path):
        code, _, err = _run(capsys, "inspect", target)
        assert code == 2 and "no such file" not in err and "truncated" in err, err
        assert str(index) in err
