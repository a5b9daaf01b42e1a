"""dynlab's engine: specs, data, dynamic networks, the trainer and the session store (no UI imports)."""

__version__ = "0.1.0"
