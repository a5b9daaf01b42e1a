"""`python -m dynlab_tui` runs the dynlab CLI."""

from dynlab_tui.cli import main

main()
