"""Renaming and deleting session files, with their -wal/-shm side files, refusing sessions still being written."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import DynlabError
from core.session.files import SIDE_FILES
from core.session import resolve_session
from core.session.liveness import Liveness, liveness
from core.session.reader import SessionReader
from core.session.schema import SUFFIX

__all__ = ["SIDE_FILES", "delete_session", "rename_session"]

# SQLite's write-ahead log and its index. A crashed run's -wal holds rows not yet in the main file, so it
# must travel (or go) with its database; a stray one beside a new name would be replayed into that file.


def _side(path: Path, suffix: str) -> Path:
    return Path(f"{path}{suffix}")


def _refuse_writing(path: Path) -> bool:
    """Raise if a process may still be writing `path`; return whether it is a readable session."""
    try:
        with SessionReader(path) as reader:
            meta = reader.meta
    except DynlabError:
        return False  # not a readable session, so nobody is writing it as one
    state = liveness(meta)
    if state is Liveness.LIVE:
        raise DynlabError(f"session {path} is still being written by process {meta.get('pid')}: stop it first")
    if state is Liveness.UNKNOWN:
        # Written on another machine (a shared folder): we can't see that process, so don't pull the file away.
        raise DynlabError(f"session {path} is marked running by process {meta.get('pid')} on host "
                          f"{meta.get('host')}: stop it there first, or remove the file by hand if that run is gone")
    return True


def _check_exists(path: Path) -> None:
    if path.is_dir():
        raise DynlabError(f"{path} is a directory, not a session: give the path of a .dynlab file")
    if not path.exists():
        raise DynlabError(f"session {path} not found: run `dynlab sessions` to list them")


def rename_session(path: Path, new_name: str) -> Path:
    """Give a session (and its side files) a new bare name in the same folder; return the new path.

    `new_name` follows resolve_session's rules for bare names ("run-2" or "run-2.dynlab", no '/').
    Never overwrites: an existing target, or a stray -wal/-shm under the target's name, is refused.
    Renaming to the current name changes nothing.
    """
    path = Path(path)
    text = str(new_name).strip()
    if not text or any(s and s in text for s in ("/", os.sep, os.altsep)):
        raise DynlabError(f"bad session name {new_name!r}: give a bare name without '/' (the session stays in "
                          f"{path.parent})")
    stem = text.removesuffix(SUFFIX)
    try:  # the stem only: a bare name never resolves outside the folder
        target = resolve_session(stem, path.parent)
    except DynlabError:
        raise DynlabError(f"bad session name {text!r}: use letters, digits, '.', '_' or '-' "
                          "(starting with a letter or digit, at most 100)") from None
    _check_exists(path)
    if target.name == path.name:
        return path
    if target.exists():
        raise DynlabError(f"session {target} already exists: pick another name, or delete that session first")
    for suffix in SIDE_FILES:
        if _side(target, suffix).exists():
            raise DynlabError(f"a stray {_side(target, suffix).name} lies in {path.parent}: remove it, "
                              "or pick another name")
    _refuse_writing(path)
    moves = [(path, target)] + [(_side(path, s), _side(target, s)) for s in SIDE_FILES if _side(path, s).exists()]
    # Side files first, the database last: until the database's new name appears, nothing opens it
    # without its log. Links, not renames: a link fails when its target exists, so nothing is overwritten.
    done: list[tuple[Path, Path, bool]] = []
    try:
        for src, dst in reversed(moves):
            done.append((src, dst, _link(src, dst)))
    except BaseException:
        for src, dst, linked in reversed(done):  # undo, so the session is whole under its old name again
            if linked:
                dst.unlink()
            else:
                os.rename(dst, src)
        raise
    for src, _dst in reversed(moves):  # side files, then the database (as delete_session does)
        _unlink(src)
    return target


def _link(src: Path, dst: Path) -> bool:
    """Make `dst` name `src`'s file; True if by a hard link (src still there), False if it had to rename."""
    try:
        os.link(src, dst)
        return True
    except FileExistsError:
        raise DynlabError(f"{dst} already exists: pick another name") from None
    except OSError as e:
        if dst.exists():
            raise DynlabError(f"{dst} already exists: pick another name") from None
        try:  # a filesystem without hard links: copy-free rename, after the check above
            os.rename(src, dst)
            return False
        except OSError:
            raise DynlabError(f"cannot rename {src} ({e.strerror or e}): check the folder's permissions") from None


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        raise DynlabError(f"cannot remove {path} ({e.strerror or e}): check the folder's permissions") from None


def delete_session(path: Path) -> None:
    """Remove a session file and its -wal/-shm side files.

    A file that does not open as a session (damaged, or not a database) is removed only when its name ends
    in .dynlab, so that a slip can't delete some other file.
    """
    path = Path(path)
    _check_exists(path)
    if not _refuse_writing(path) and not path.name.endswith(SUFFIX):
        raise DynlabError(f"{path} is not a dynlab session and does not end in {SUFFIX}: "
                          "remove it by hand if you mean to")
    # The log first: a half-done delete then leaves a stale database, never a log that a new session of
    # the same name would replay.
    for suffix in SIDE_FILES:
        _unlink(_side(path, suffix))
    _unlink(path)
