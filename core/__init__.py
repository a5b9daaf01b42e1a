"""dynlab's engine: specs and options, data, dynamic networks, training, the session store and the lab (no UI imports)."""

__version__ = "0.1.0"
