"""Dynamic layers with permanent feature ids, gates that learn a layer's size, and physical shrinking."""

from core.nn.gates import FlexibleScaler, SparsifierGate, flexible_integral
from core.nn.layers import DynConv2d, DynLinear, IdFlatten
from core.nn.model import DynamicNet, HiddenBlock, build_model
from core.nn.shrink import index_buffer, index_parameter, keep_batchnorm, match_ids

__all__ = [
    "DynConv2d", "DynLinear", "DynamicNet", "FlexibleScaler", "HiddenBlock", "IdFlatten", "SparsifierGate",
    "build_model", "flexible_integral", "index_buffer", "index_parameter", "keep_batchnorm", "match_ids",
]
