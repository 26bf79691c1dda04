"""Atomic file output: a temporary file in the target's folder, fsynced, then renamed.

Why: a killed or failed run must never leave a partial output that a later
run would mistake for a finished one. The temporary name starts with
``.NAME.`` and ends with ``.tmp``, so stale ones can be recognised and removed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic", "remove_stale_temporaries"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None], overwrite: bool = False) -> None:
    """Writes ``path`` through ``write(fileobj)``; ``path`` appears complete or not at all.

    Raises ``FileExistsError`` when ``path`` exists and ``overwrite`` is false
    (checked again just before the rename), and ``OSError`` naming ``path``.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if p.exists() and not overwrite:
            raise FileExistsError(f"output file {path} exists")
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Removes temporaries that a killed :func:`write_atomic` left beside ``path``; returns how many."""
    p = Path(path)
    if not p.parent.is_dir():
        return 0
    removed = 0
    for stale in p.parent.glob(f".{_glob_escape(p.name)}.*.tmp"):
        try:
            stale.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)
