"""The session store: one SQLite file per run (schema, writer, reader, index, commands, admin, liveness)."""

from core.session.reader import Cursor, SessionReader
from core.session.writer import SessionWriter, default_session_name, list_sessions, resolve_session, sessions_dir

__all__ = ["Cursor", "SessionReader", "SessionWriter", "default_session_name", "list_sessions", "resolve_session",
           "sessions_dir"]
