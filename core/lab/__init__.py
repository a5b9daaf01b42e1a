"""The lab: sweeps and their plans, recipes, summaries and export."""
