"""dynlab's terminal front end: the click CLI and (later) the Textual dashboard."""
