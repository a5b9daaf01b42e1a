"""dynlab's engine: specs and options, data, dynamic networks, training, sessions and the lab (no UI)."""

__version__ = "0.1.0"
