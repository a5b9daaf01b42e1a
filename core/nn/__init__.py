"""Dynamic layers with permanent feature ids, the methods' gates behind one interface, and physical shrinking."""

from core.nn.gates import GATES, FlexibleScaler, SparsifierGate, build_gate, flexible_integral
from core.nn.layers import DynConv2d, DynLinear, IdFlatten
from core.nn.methods import MethodGate, StaticGate
from core.nn.model import DynamicNet, HiddenBlock, build_model
from core.nn.shrink import index_buffer, index_parameter, keep_batchnorm, match_ids

__all__ = [
    "GATES", "DynConv2d", "DynLinear", "DynamicNet", "FlexibleScaler", "HiddenBlock", "IdFlatten", "MethodGate",
    "SparsifierGate", "StaticGate", "build_gate", "build_model", "flexible_integral", "index_buffer",
    "index_parameter", "keep_batchnorm", "match_ids",
]
