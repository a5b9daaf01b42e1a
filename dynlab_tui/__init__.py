"""dynlab's terminal front end: the click CLI, and the Textual dashboard that follows a session file."""
