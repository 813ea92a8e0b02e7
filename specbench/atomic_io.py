"""Write files whole or not at all (temp file in the same folder, then rename).

The temp file is ``.<name>.<8 random characters>.tmp`` beside the target (``temp_pattern``): a
process killed while writing leaves one behind, which the next writer of that target may remove
(``remove_stale_temps``; ``specbench run`` does, under its job lock).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def _default_mode() -> int:
    """The mode a plain open() would give a new file (0666 less the umask); mkstemp's is 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temp_pattern(name: str) -> re.Pattern:
    """The names of the temp files ``atomic_write_bytes`` makes for a target called ``name``."""
    return re.compile(rf"^\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.tmp$")


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove temp files left beside ``path`` by writers that were killed; returns what was removed.

    Only call this while no other process can be writing ``path`` (specbench run holds its job lock)."""
    path = Path(path)
    pattern, removed = temp_pattern(path.name), []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    for p in candidates:
        if pattern.match(p.name):
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (not supported everywhere: then a no-op)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, previous: Path | None = None) -> None:
    """Write ``data`` to ``path`` whole or not at all. ``previous``: first move the file ``path``
    holds now there (only once the new data is complete on disk), so that a reader who finds
    ``path`` missing or damaged still has the last complete version."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
