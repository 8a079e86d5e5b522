"""Writing output files: atomically (a reader never sees half a file) and with the user's umask.

Every file wavecore writes (generated Verilog and JSON, plan reports and plots, network YAML, build reports,
bitstreams) goes through :func:`write_atomic`, :func:`write_atomic_many` or :func:`atomic_path`: the content
is written to a temporary file in the target's directory, given the permissions a plain ``open(path, "w")``
would have (``0o666`` less the process umask: ``0644`` under the usual umask 022; ``tempfile.mkstemp``
alone would leave ``0600``) and renamed over the target with ``os.replace``. On an error the temporary file
is removed and any previous target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "default_mode", "write_atomic", "write_atomic_many"]

_UMASK_LOCK = threading.Lock()


def default_mode() -> int:
    """The permissions ``open(path, "w")`` gives a new file: ``0o666`` less the current umask."""
    with _UMASK_LOCK:  # reading the umask means setting it; keep other threads out meanwhile
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write by any means; renamed onto ``path`` on success.

    For writers that want a file name rather than data (``matplotlib``'s ``savefig``, tools run in a
    subprocess). ``suffix`` keeps the extension such writers look at.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, default_mode())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_atomic(path, content: str | bytes) -> Path:
    """Write ``content`` (text as UTF-8, or bytes) to ``path`` atomically with the umask's permissions."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(content.encode() if isinstance(content, str) else content)
    return Path(path)


def write_atomic_many(items: Iterable[tuple[object, str | bytes]]) -> tuple[Path, ...]:
    """Write several files so that either all of them are replaced or none is.

    Every temporary file is written first; only when all succeeded are they renamed into place.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in items:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((temporary, path))
            with os.fdopen(handle, "wb") as stream:
                stream.write(content.encode() if isinstance(content, str) else content)
            os.chmod(temporary, default_mode())
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _ in staged:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return tuple(path for _, path in staged)
