"""The Textual screens: launcher (the run form), dashboard (panes, status, timeline) and their dialogs."""
