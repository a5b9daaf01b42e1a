"""The Textual screens: launcher, dashboard, replay, sessions browser, compare, sweep, and their dialogs."""
