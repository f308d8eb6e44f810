"""Streaming character generation with a char-RNN engine, one character per call.

As TensorRT's sampleCharRNN: each call feeds one character id and the carried recurrent
state, and returns the next-character logits and the new state; the next character is
picked greedily (top-1) or sampled from softmax(logits / temperature). The per-call path
is kept small: feeds and outputs are reused, nothing is validated inside the loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...errors import Tf2rtError
from .vocab import Vocab, VocabError

ENGINE_SUFFIXES = (".onnx", ".engine", ".trt", ".plan")


def load_model(model: Any, *, precision: str = "fp32", **convert_options: Any) -> Any:
    """An Engine from an Engine, an engine file, or anything `tf2rt.convert` accepts."""
    from ...engine import Engine, load_engine

    if isinstance(model, Engine):
        return model
    p = Path(model)
    if p.is_file() and p.suffix.lower() in ENGINE_SUFFIXES:
        return load_engine(p)
    from ...importers import convert

    convert_options.setdefault("states", True)
    return convert(p, precision=precision, **convert_options)


class CharRNN:
    """A char-RNN engine plus its vocabulary: `generate()`, `step()`, `logits()`."""

    def __init__(self, model: Any, vocab: Vocab | str | Path, *, backend: str = "onnxruntime",
                 precision: str = "fp32", backend_options: dict[str, Any] | None = None, **convert_options: Any):
        self.engine = load_model(model, precision=precision, **convert_options)
        self.vocab = vocab if isinstance(vocab, Vocab) else Vocab.load(vocab)
        eng = self.engine
        pairs = eng.states
        if not pairs:
            raise Tf2rtError(
                "this engine has no recurrent state inputs/outputs, so it cannot generate one character "
                "per call; convert the model with states enabled (tf2rt convert --states)"
            )
        state_in = {i for i, _ in pairs}
        ids = [s for s in eng.inputs if s.name not in state_in]
        if len(ids) != 1 or not str(ids[0].dtype).startswith("int"):
            raise Tf2rtError(
                "a char-RNN engine needs exactly one integer input of character ids besides its states; "
                f"this one has {', '.join(f'{s.name} ({s.dtype})' for s in ids) or 'none'}"
            )
        self.input_name = ids[0].name
        self.logits_name = self._logits_output()
        V = next(s for s in eng.outputs if s.name == self.logits_name).shape[-1]
        if V is not None and V != len(self.vocab):
            raise VocabError(f"the model predicts {V} characters but the vocabulary has {len(self.vocab)}; "
                             "use the vocabulary the model was trained with")
        self.state_pairs = pairs
        specs = {s.name: s for s in eng.inputs}
        self._zeros = {i: np.zeros((1,) + tuple(d or 1 for d in specs[i].shape[1:]), np.float32) for i, _ in pairs}
        options = dict(backend_options or {})
        # onnxruntime's own thread default (one per core) is fastest on an idle machine; on a
        # machine shared with other busy processes pass threads=1 (`tf2rt charrnn --threads 1`).
        self.runner = eng.runner(backend, **options)
        names = eng.output_names
        self._logits_at = names.index(self.logits_name)
        self._state_at = [(i, names.index(o)) for i, o in pairs]
        run_list = getattr(self.runner, "run_list", None)
        if run_list is None:
            run = self.runner.run
            run_list = lambda feeds: [run(feeds)[n] for n in names]  # noqa: E731
        self._run: Callable[[dict], list] = run_list
        self._ids = np.zeros((1, 1), np.int32)
        self.feeds: dict[str, np.ndarray] = {}
        self.reset()
        # On the cuda backend, a plain embedding -> recurrent stack -> dense engine runs its
        # stack in a streaming session (no launch per character); other engines, or one
        # whose first step disagrees with the generic path, keep the generic path.
        self._stream = self._streamed() if backend == "cuda" else None
        self._decode: Any = False if backend != "cuda" else None  # None: not tried yet

    def _logits_output(self) -> str:
        card = (self.engine.metadata.get("model") or {}).get("detected") or {}
        head = card.get("head") or {}
        outs = [s.name for s in self.engine.outputs]
        if head.get("logits") in outs:
            return head["logits"]
        for name in ("logits", "output", "outputs"):
            if name in outs:
                return name
        state_out = {o for _, o in self.engine.states}
        rest = [n for n in outs if n not in state_out]
        if len(rest) == 1:
            return rest[0]
        raise Tf2rtError(f"cannot tell which output holds the logits among {', '.join(rest)}")

    def _streamed(self) -> Any:
        from ...errors import UnsupportedError
        from .cuda_stream import NotStreamable, StreamedCharRNN

        try:
            stream = StreamedCharRNN(self.engine, self.runner, self.input_name, self.logits_name)
        except (NotStreamable, UnsupportedError):
            return None
        want = self.step(0).astype(np.float32)  # the generic path, before the session holds the GPU
        self.reset()
        stream.reset()
        got = stream.step(0)
        tol = 2e-2 if self.engine.precision != "fp32" else 1e-4
        if not np.abs(got - want).max() <= tol * max(1.0, float(np.abs(want).max())):
            stream.close()
            return None
        stream.reset()
        return stream

    def _decoder(self) -> Any:
        """The GPU decoder for `generate()` (cuda backend, plain char-RNN engine), checked
        once against the per-character path (the logits after one launch of forced steps);
        None where it does not apply."""
        if self._decode is not None:
            return self._decode or None
        from .cuda_stream import NotStreamable, char_rnn_parts

        self._decode = False
        try:
            parts = char_rnn_parts(self.engine, self.runner.executor.chains, self.input_name, self.logits_name)
            decoder = self.runner.decoder(*parts)
        except (NotStreamable, Tf2rtError):  # not a plain char-RNN, or a stack it cannot run
            return None
        if self.streaming:
            self._stream.close()  # an open session holds most of the GPU's SMs
        # One launch of forced zeros: the last step's logits against as many generic steps.
        decoder.generate(np.zeros(decoder.K, np.int64), 1, greedy=True)
        got = decoder.logits.cpu().numpy().reshape(-1)
        self.reset()
        for _ in range(decoder.K):
            want = self.step(0).astype(np.float32)
        if self.streaming:
            self._stream.close()
        tol = 2e-2 if self.engine.precision != "fp32" else 1e-4
        if np.abs(got - want).max() <= tol * max(1.0, float(np.abs(want).max())):
            self._decode = decoder
        return self._decode or None

    @property
    def decoding_on_device(self) -> bool:
        """Whether `generate()` runs the whole model on the GPU (after its first call)."""
        return bool(self._decode)

    @property
    def path(self) -> str:
        """How generate() runs, in words."""
        if self.decoding_on_device:
            d = self._decode.describe()
            if d["stack"] == "resident":
                return f"whole model on the GPU, one launch for up to {d['steps_per_launch']} characters"
            return f"whole model on the GPU, {d['steps_per_launch']} characters per launch"
        if self.streaming:
            return "streaming session for the recurrent stack, embedding and head on the host"
        return "one engine call per character"

    @property
    def streaming(self) -> bool:
        """Whether steps run in a streaming session (cuda backend, plain char-RNN engine)."""
        return getattr(self, "_stream", None) is not None

    # --- stepping -----------------------------------------------------------------------
    def reset(self) -> None:
        """Start from zero state."""
        self._zero_feeds()
        if self.streaming:
            self._stream.reset()

    def _zero_feeds(self) -> None:
        self.feeds = {self.input_name: self._ids}
        for name, z in self._zeros.items():
            self.feeds[name] = z

    def step(self, char_id: int) -> np.ndarray:
        """Feed one id, carry the state; returns the next-character logits [V]."""
        if self.streaming:
            return self._stream.step(char_id)
        self._ids[0, 0] = char_id
        out = self._run(self.feeds)
        feeds = self.feeds
        for name, k in self._state_at:
            feeds[name] = out[k]
        return out[self._logits_at].reshape(-1)

    def logits(self, text: str) -> np.ndarray:
        """Per-step logits [len(text), V] for `text` fed from zero state (teacher forcing)."""
        self.reset()
        return np.stack([self.step(int(c)) for c in self.vocab.encode(text)])

    def generate(self, start: str, length: int, *, temperature: float = 1.0, seed: int | None = None,
                 greedy: bool = False, top_k: int | None = None) -> str:
        """`length` characters following `start` (greedy top-1, or sampled). On the cuda
        backend a plain char-RNN generates with the whole model on the GPU (the same greedy
        text; sampled text comes from the GPU's random stream, so one seed gives other
        characters than on the CPU backends)."""
        if not start:
            raise VocabError("the start text must have at least one character")
        if length < 0:
            raise Tf2rtError(f"length must be >= 0, got {length}")
        if not greedy and not temperature > 0:
            raise Tf2rtError(f"temperature must be > 0, got {temperature}")
        ids = self.vocab.encode(start)
        decoder = self._decoder() if self._decode is not False else None
        if decoder is not None:  # the whole loop on the GPU; the step state is left at zero
            if self.streaming:
                self._stream.close()
            out = decoder.generate(ids.astype(np.int64), length, greedy=greedy, temperature=temperature,
                                   top_k=top_k, seed=seed)
            self._zero_feeds()  # a closed session reopens with zero state at the next step()
            return self.vocab.decode(out[0])
        self.reset()
        logits = None
        for c in ids:
            logits = self.step(int(c))
        rng = np.random.default_rng(seed)
        out = np.empty(length, np.int64)
        for t in range(length):
            assert logits is not None
            nxt = int(np.argmax(logits)) if greedy else _sample(logits, temperature, top_k, rng)
            out[t] = nxt
            if t + 1 < length:
                logits = self.step(nxt)
        return self.vocab.decode(out)

    def close(self) -> None:
        if self.streaming:
            self._stream.close()
            self._stream = None
        self.runner.close()


def _sample(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    z = logits.astype(np.float64) / temperature
    if top_k is not None and 0 < top_k < z.size:
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
    z -= z.max()
    p = np.exp(z)
    c = np.cumsum(p)
    return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), z.size - 1))
