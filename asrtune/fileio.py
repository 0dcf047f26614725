"""Atomic file writing: a killed process never leaves a half-written output behind.

Everything asrtune writes for the user (manifests, reports, transcripts, converted models)
goes to a temporary sibling first and is renamed into place, which POSIX makes atomic.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from asrtune.errors import AsrtuneError


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_DEFAULT_FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file renamed into place on success.

    >>> with atomic_open("out/report.json") as f:   # doctest: +SKIP
    ...     f.write("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _DEFAULT_FILE_MODE)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def check_folder_output(path: str | os.PathLike, option: str = "output") -> None:
    """Raise :class:`AsrtuneError` when a folder output would replace an existing file.

    Call it before any work, so the error comes first; :func:`atomic_directory` checks too.

    >>> check_folder_output(__file__, "--out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    asrtune.errors.AsrtuneError: --out ...fileio.py: exists and is not a folder; give a folder path
    """
    path = Path(path)
    if path.exists() and not path.is_dir():  # replacing the user's file with a folder would lose it
        raise AsrtuneError(f"{option} {path}: exists and is not a folder; give a folder path")


def check_replaceable_folder(path: str | os.PathLike, option: str, force: bool) -> None:
    """:func:`check_folder_output`, and refuse a folder that already holds files unless ``force``
    (the commands that replace a whole output folder: convert, merge)."""
    check_folder_output(path, option)
    path = Path(path)
    if path.is_dir() and any(path.iterdir()) and not force:
        raise AsrtuneError(f"{option} {path}: already exists and is not empty; pass --force to replace it")


def check_file_output(path: str | os.PathLike, option: str = "output") -> None:
    """Raise :class:`AsrtuneError` when a file output names an existing folder.

    >>> check_file_output(os.path.dirname(__file__), "--plot")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    asrtune.errors.AsrtuneError: --plot ...asrtune: is a folder; give a file path
    """
    if Path(path).is_dir():
        raise AsrtuneError(f"{option} {path}: is a folder; give a file path")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory in a temporary sibling and rename it into place when the block succeeds.

    An existing ``path`` is replaced only after the new one is complete.
    """
    path = Path(path)
    check_folder_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
