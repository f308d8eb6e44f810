"""Network: TensorRT-style layer-by-layer model definition (add_input, add_*, mark_output).

Layer modules outside the core attach their add_* methods with `network_method` and are
imported here when present (see docs/network.md, "How to add a layer").
"""

from __future__ import annotations

import importlib
import importlib.util

from .layer import Layer, broadcast_shapes, norm_axis
from .network import Network, as_array, network_method
from .tensor import DTYPES, FLOAT_DTYPES, Tensor, normalize_dtype

# Optional layer modules (each registers its own add_* methods on import).
LAYER_MODULES: tuple[str, ...] = ("layers_rnn", "layers_cnn", "layers_select", "layers_detect",
                                 "layers_control", "layers_resize")

for _mod in LAYER_MODULES:
    if importlib.util.find_spec(f"{__name__}.{_mod}") is not None:
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["Network", "Tensor", "Layer", "network_method", "as_array", "broadcast_shapes", "norm_axis",
           "DTYPES", "FLOAT_DTYPES", "normalize_dtype"]
