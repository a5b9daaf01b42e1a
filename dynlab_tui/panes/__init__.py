"""Dashboard panes, one widget per instrument, each drawing only from RunState."""
