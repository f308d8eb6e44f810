"""Recurrent stacks run without the persistent kernel.

- `CudnnStack`: torch.nn.LSTM/GRU/RNN (cuDNN) with the engine's weights loaded; for the
  forms cuDNN has (default activations, GRU reset-after, no peepholes/clip, full-length
  sequences, forward or bidirectional).
- `LoopStack`: one step at a time with torch ops; any ONNX form (activations, clip,
  peepholes, GRU reset-before, per-sequence lengths, reverse). Slow but exact and
  capturable in a CUDA graph.

Both take the same call as PersistentStack: x [T, B, in], h0/c0 [L*D, B, H], seq_lens [B]
-> (y [T, D, B, H] of the last layer, h_n [L*D, B, H], c_n [L*D, B, H] or None).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...errors import UnsupportedError
from ...layouts import ONNX_GRU, ONNX_LSTM, TORCH_GRU, TORCH_LSTM, reorder_gates
from .packing import DirectionWeights
from .plan import RnnProblem

_TORCH_ORDER = {"lstm": (ONNX_LSTM, TORCH_LSTM), "gru": (ONNX_GRU, TORCH_GRU)}


def _device(device: Any) -> Any:
    import torch

    return torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)


def _torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


class CudnnStack:
    """A recurrent stack as one torch.nn.LSTM/GRU/RNN module (cuDNN)."""

    def __init__(self, problem: RnnProblem, layers: Sequence[Sequence[DirectionWeights]], device: Any = None) -> None:
        import torch

        p = problem
        if p.peepholes or p.clip or p.reverse or not p.default_activations or (
            p.cell == "gru" and not p.linear_before_reset
        ):
            raise UnsupportedError("cuDNN cannot run this recurrent form; use the step loop")
        self.problem = p
        dev = _device(device)
        kw = dict(input_size=p.input_size, hidden_size=p.hidden, num_layers=p.layers,
                  bidirectional=p.directions == 2, bias=True)
        if p.cell == "lstm":
            mod = torch.nn.LSTM(**kw)
        elif p.cell == "gru":
            mod = torch.nn.GRU(**kw)
        else:
            mod = torch.nn.RNN(nonlinearity=p.rnn_activation, **kw)
        with torch.no_grad():
            for layer, dirs in enumerate(layers):
                for d, w in enumerate(dirs):
                    sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                    conv = (lambda a: reorder_gates(a, *_TORCH_ORDER[p.cell])) if p.cell in _TORCH_ORDER else (
                        lambda a: a)
                    getattr(mod, "weight_ih" + sfx).copy_(torch.from_numpy(conv(w.W)))
                    getattr(mod, "weight_hh" + sfx).copy_(torch.from_numpy(conv(w.R)))
                    getattr(mod, "bias_ih" + sfx).copy_(torch.from_numpy(conv(w.Wb)))
                    getattr(mod, "bias_hh" + sfx).copy_(torch.from_numpy(conv(w.Rb)))
        self.module = mod.to(device=dev, dtype=_torch_dtype(p.dtype)).eval()
        self.module.flatten_parameters()
        self.dtype = _torch_dtype(p.dtype)

    def __call__(self, x: Any, h0: Any = None, c0: Any = None, seq_lens: Any = None) -> tuple[Any, Any, Any]:
        import torch

        p = self.problem
        if seq_lens is not None:
            raise UnsupportedError("cuDNN stack runs full-length sequences only")
        T, B = x.shape[0], x.shape[1]
        x = x.to(self.dtype)
        shape = (p.layers * p.directions, B, p.hidden)
        # fp32 engines must stay fp32: cuDNN would otherwise use TF32 tensor cores. Newer
        # PyTorch has a per-operator setting (and refuses mixing it with the legacy flag).
        cfgs = [c for c in (getattr(torch.backends.cudnn, "rnn", None), getattr(torch.backends.cudnn, "conv", None))
                if getattr(c, "fp32_precision", None) is not None]
        if not cfgs:
            with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
                return self._forward(x, shape, T, B, h0, c0)
        old = [c.fp32_precision for c in cfgs]
        for c in cfgs:  # both: PyTorch refuses differing conv/RNN settings in some paths
            c.fp32_precision = "ieee"
        try:
            return self._forward(x, shape, T, B, h0, c0)
        finally:
            for c, o in zip(cfgs, old):
                c.fp32_precision = o

    def _forward(self, x: Any, shape: tuple, T: int, B: int, h0: Any, c0: Any) -> tuple[Any, Any, Any]:
        import torch

        p = self.problem
        with torch.no_grad():
            if p.cell == "lstm":
                if h0 is None and c0 is None:
                    y, (hn, cn) = self.module(x)
                else:
                    zeros = torch.zeros(shape, device=x.device, dtype=self.dtype)
                    # states may arrive as views of the engine's layout; cuDNN wants them dense
                    h = zeros if h0 is None else h0.reshape(shape).to(self.dtype).contiguous()
                    c = zeros if c0 is None else c0.reshape(shape).to(self.dtype).contiguous()
                    y, (hn, cn) = self.module(x, (h, c))
            else:
                y, hn = self.module(x) if h0 is None else \
                    self.module(x, h0.reshape(shape).to(self.dtype).contiguous())
                cn = None
        y = y.view(T, B, p.directions, p.hidden).permute(0, 2, 1, 3)
        return y, hn, cn


def _act(name: str, alpha: float | None = None, beta: float | None = None) -> Any:
    import torch

    name = name.lower()
    if name == "sigmoid":
        return torch.sigmoid
    if name == "tanh":
        return torch.tanh
    if name == "relu":
        return torch.relu
    if name == "hardsigmoid":
        a, b = (0.2 if alpha is None else alpha), (0.5 if beta is None else beta)
        return lambda v: torch.clamp(a * v + b, 0.0, 1.0)
    if name == "leakyrelu":
        a = 0.01 if alpha is None else alpha
        return lambda v: torch.nn.functional.leaky_relu(v, a)
    if name == "affine":
        return lambda v: (1.0 if alpha is None else alpha) * v + (0.0 if beta is None else beta)
    if name == "scaledtanh":
        return lambda v: (1.0 if alpha is None else alpha) * torch.tanh((1.0 if beta is None else beta) * v)
    if name == "softsign":
        return lambda v: v / (1 + v.abs())
    if name == "softplus":
        return torch.nn.functional.softplus
    if name == "elu":
        return lambda v: torch.nn.functional.elu(v, 1.0 if alpha is None else alpha)
    if name == "thresholdedrelu":
        a = 1.0 if alpha is None else alpha
        return lambda v: torch.where(v > a, v, torch.zeros_like(v))
    raise UnsupportedError(f"recurrent activation {name!r} is not supported by the cuda backend")


class LoopStack:
    """Step-by-step recurrence with torch ops, ONNX semantics (fp32 math)."""

    def __init__(self, problem: RnnProblem, layers: Sequence[Sequence[DirectionWeights]],
                 activations: Sequence[Sequence[Any]] | None = None, device: Any = None) -> None:
        """activations[d] = list of callables per ONNX activation slot (defaults if None)."""
        import torch

        self.problem = p = problem
        dev = _device(device)
        f32 = dict(device=dev, dtype=torch.float32)
        self.w = [[{k: (None if v is None else torch.from_numpy(np.asarray(v)).to(**f32))
                    for k, v in (("W", w.W), ("R", w.R), ("Wb", w.Wb), ("Rb", w.Rb), ("P", w.P))}
                   for w in dirs] for dirs in layers]
        if activations is None:
            default = {"lstm": ["sigmoid", "tanh", "tanh"], "gru": ["sigmoid", "tanh"],
                       "rnn": [p.rnn_activation]}[p.cell]
            activations = [[_act(a) for a in default] for _ in range(p.directions)]
        self.acts = activations
        self.dtype = _torch_dtype(p.dtype)

    def _direction(self, x: Any, w: dict, acts: Sequence[Any], h: Any, c: Any, lens: Any, reverse: bool):
        import torch

        p = self.problem
        T, B = x.shape[0], x.shape[1]
        H = p.hidden
        clip = p.clip
        cl = (lambda v: torch.clamp(v, -clip, clip)) if clip else (lambda v: v)
        xp = torch.matmul(x, w["W"].T) + w["Wb"]  # [T, B, G*H]
        steps = torch.arange(T, device=x.device).unsqueeze(1)  # [T, 1]
        active = steps < lens.unsqueeze(0)  # [T, B]
        if reverse:
            idx = (lens.unsqueeze(0) - 1 - steps).clamp(min=0)  # time read at iteration s
        else:
            idx = steps.expand(T, B)
        xp = torch.gather(xp, 0, idx.unsqueeze(-1).expand(T, B, xp.shape[-1]))
        ys = []
        R, Rb, P = w["R"], w["Rb"], w["P"]
        for s in range(T):
            a = active[s].unsqueeze(1)
            rec = h @ R.T + Rb
            xs = xp[s]
            if p.cell == "lstm":
                f_, g_, h_ = acts
                xi, xo, xf, xc = xs.split(H, -1)
                ri, ro, rf, rc = rec.split(H, -1)
                pi, po, pf = (P.split(H) if P is not None else (0.0, 0.0, 0.0))
                i = f_(cl(xi + ri + pi * c))
                f = f_(cl(xf + rf + pf * c))
                cc = g_(cl(xc + rc))
                c_new = f * c + i * cc
                o = f_(cl(xo + ro + po * c_new))
                h_new = o * h_(c_new)
                c = torch.where(a, c_new, c)
            elif p.cell == "gru":
                f_, g_ = acts
                xz, xr, xh = xs.split(H, -1)
                rz, rr, rh = rec.split(H, -1)
                z = f_(cl(xz + rz))
                r = f_(cl(xr + rr))
                if p.linear_before_reset:
                    hh = g_(cl(xh + r * rh))
                else:
                    Rh = R[2 * H:]
                    hh = g_(cl(xh + (r * h) @ Rh.T + Rb[2 * H:]))
                h_new = (1 - z) * hh + z * h
            else:
                h_new = acts[0](cl(xs + rec))
            h = torch.where(a, h_new, h)
            ys.append(torch.where(a, h_new, torch.zeros_like(h_new)))
        y = torch.stack(ys)  # by iteration
        # Put each iteration's output at its time index (reverse: len-1-s; padding stays 0).
        if reverse:
            out = torch.zeros_like(y)
            tgt = torch.where(active, idx, steps.expand(T, B))
            out.scatter_(0, tgt.unsqueeze(-1).expand_as(y), y)
            y = out
        return y, h, c

    def __call__(self, x: Any, h0: Any = None, c0: Any = None, seq_lens: Any = None) -> tuple[Any, Any, Any]:
        import torch

        p = self.problem
        T, B, H, D = x.shape[0], x.shape[1], p.hidden, p.directions
        x = x.float()
        lens = (torch.full((B,), T, device=x.device, dtype=torch.int64) if seq_lens is None
                else seq_lens.to(torch.int64).clamp(max=T))
        zeros = torch.zeros(p.layers * D, B, H, device=x.device)
        h0 = zeros if h0 is None else h0.reshape(zeros.shape).float()
        c0 = zeros if c0 is None else c0.reshape(zeros.shape).float()
        hn, cn = [], []
        inp = x
        for layer in range(p.layers):
            ys = []
            for d in range(D):
                g = layer * D + d
                y, h, c = self._direction(inp, self.w[layer][d], self.acts[d], h0[g], c0[g], lens,
                                          reverse=(d == 1 or p.reverse))
                ys.append(y)
                hn.append(h)
                cn.append(c)
            y = torch.stack(ys, 1)  # [T, D, B, H]
            inp = y.permute(0, 2, 1, 3).reshape(T, B, D * H)
        out_c = torch.stack(cn).to(self.dtype) if p.cell == "lstm" else None
        return y.to(self.dtype), torch.stack(hn).to(self.dtype), out_c
