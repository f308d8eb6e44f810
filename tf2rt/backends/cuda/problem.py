"""The planner's description of one recurrent stack (RnnProblem) and its dtype tables."""

from __future__ import annotations

from dataclasses import dataclass

from .packing import GATES_PER_CELL

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
DTYPE_CODE = {"float32": 0, "float16": 1, "bfloat16": 2}
CELL_CODE = {"lstm": 0, "gru": 1, "rnn-tanh": 2, "rnn-relu": 3}
#: Three bf16 passes carry each operand to about 16 significant bits, three TF32 passes to
#: about 21: where a recurrence amplifies rounding (large weights) the difference shows.
#: Emulated 20-step GRUs, H=96 and 512, largest error against exact products
#: (benchmarks/results/precision_fp32_forms.md): weight rows of L2 norm 2 -> bf16x3 1.1e-5,
#: tf32x3 9e-7; norm 4 -> 4e-5..1.8e-4 / 3e-6..1.2e-5; norm 4.9 (the GPU engine tests'
#: weights, where bf16x3 builds measured 5e-4..2.5e-3 off) 3e-4..6e-4 / 4e-5. So fp32 stacks
#: use the bf16 forms (BF16X3, the bf16x3 projection, the single-step stack's split
#: operands) only where no weight row (W or R, any layer) has an L2 norm above this; larger
#: weights keep three TF32 passes or plain fp32. BF16X3_ENV="1" forces BF16X3 regardless.
BF16X3_MAX_ROW_NORM = 2.0


@dataclass(frozen=True)
class RnnProblem:
    """One stack of recurrent layers as the engine's ONNX graph describes it."""

    cell: str  # "lstm" | "gru" | "rnn"
    hidden: int
    input_size: int
    batch: int
    seq_len: int
    layers: int = 1
    directions: int = 1
    dtype: str = "float32"
    linear_before_reset: bool = True
    rnn_activation: str = "tanh"
    default_activations: bool = True
    peepholes: bool = False
    clip: float | None = None
    reverse: bool = False  # a single "reverse" direction
    row_norm: float = 0.0  # largest L2 norm of a weight row (W or R) of any layer; 0: not known (taken as small)

    @property
    def bf16_ok(self) -> bool:
        """Whether fp32 products may run as bf16 hi/lo parts (BF16X3_MAX_ROW_NORM)."""
        return self.row_norm <= BF16X3_MAX_ROW_NORM

    @property
    def gates(self) -> int:
        return GATES_PER_CELL[self.cell]

    @property
    def cell_code(self) -> int:
        return CELL_CODE[self.cell if self.cell != "rnn" else f"rnn-{self.rnn_activation}"]

    @property
    def weight_bytes(self) -> int:
        """Input and recurrent weights of every layer and direction, in the stack's dtype."""
        rows = self.gates * self.hidden
        inputs = self.input_size + (self.layers - 1) * self.hidden * self.directions
        return rows * (inputs + self.layers * self.hidden) * self.directions * DTYPE_BYTES[self.dtype]
