"""Writing files so that a reader never sees half of one (shared plumbing for every module).

Everything the course saves (vocabularies, checkpoints, n-gram models, the results table, the
download cache) is first written to a temporary file beside its destination and renamed only once
complete: an interrupted run leaves the old file or none, never a truncated one. Tables that
several processes add rows to (the results table, in a workshop where many notebooks run at once)
are updated under a file lock (:func:`update_json_rows`), so that no process's row is lost.

What a learner saves to load again (tokenizers, vocabularies, checkpoints' configs) is *sealed*: the
file records the sha256 of its own content (:func:`write_json` with ``sealed=True``), and
:func:`read_json` refuses a file whose content no longer matches, naming it, so that a damaged file
that still parses (a deleted character, two lines swapped) is never loaded as a different object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["atomic_write", "write_json", "read_json", "content_sha256", "file_sha256", "check_seal", "locked", "read_json_rows",
           "update_json_rows"]

SEAL = "content_sha256"  # the key of a sealed JSON file that holds the sha256 of the rest


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it to ``path``.

    If ``write`` raises, the temporary file is removed and ``path`` is left as it was. The file gets
    the permissions of any new file (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def content_sha256(state: dict) -> str:
    """The sha256 of a JSON object's content, its seal left out: the same for the object and the file it was
    written to and read back from (keys sorted, tuples as lists, floats as JSON writes them)."""
    body = {k: v for k, v in json.loads(json.dumps(state)).items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str | os.PathLike, state: Any, *, sealed: bool = False, indent: int | None = None) -> Path:
    """``state`` as JSON in ``path`` (UTF-8, non-ASCII characters kept as they are), written atomically;
    ``sealed``: a dict, with the sha256 of its content recorded under ``"content_sha256"``."""
    if sealed:
        state = {**state, SEAL: content_sha256(state)}
    text = json.dumps(state, ensure_ascii=False, indent=indent)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: str | os.PathLike, build: Callable[[Any], Any], what: str, fix: str, *,
              sealed: bool = False) -> Any:
    """``build(the JSON in path)``; a file that is not valid UTF-8 JSON, that ``build`` refuses (a
    ``ValueError`` or ``TypeError``) or, ``sealed``, whose content does not match its recorded sha256, is a
    ``ValueError`` naming the file, ``what`` it should be and the ``fix``. A file saved before seals
    existed loads with a warning that it cannot be checked."""
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable {what} ({exc}); {fix}.") from exc
    if sealed:
        check_seal(path, state, what, fix)
    try:
        return build(state)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable {what} ({type(exc).__name__}: {exc}); {fix}.") from exc


def check_seal(path: str | os.PathLike, state: Any, what: str, fix: str) -> None:
    """Refuse a sealed file whose content has changed since it was written (see :func:`write_json`)."""
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a readable {what} (a JSON object was expected); {fix}.")
    if SEAL not in state:
        warnings.warn(f"{path} was saved without the sha256 of its content (by an older llmcourse), so a damaged "
                      f"copy cannot be told from a good one; save the {what} again to add it.", stacklevel=3)
        return
    actual = content_sha256(state)
    if actual != state[SEAL]:
        raise ValueError(f"{path} has been changed since it was saved: the sha256 of its content is {actual}, "
                         f"the file records {state[SEAL]}. A damaged {what} would load as a different one; {fix}.")


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock, across processes, on ``path`` (through a hidden ``.NAME.lock`` beside it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a+b") as handle:
        if os.name == "nt":  # pragma: no cover - Windows
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
        else:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if os.name == "nt":  # pragma: no cover
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)


def read_json_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of a JSON table file (a list of objects), or none if it does not exist yet."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable table ({exc}): move it aside to start a new one.") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path} should hold a JSON list of rows: move it aside to start a new one.")
    return rows


def update_json_rows(path: str | os.PathLike, row: dict, same: Callable[[dict], Any]) -> list[dict]:
    """Replace the rows whose ``same(row)`` equals this row's by ``row`` (appended last), under a lock.

    Read, change and write happen while holding :func:`locked`, and the write is atomic, so processes
    recording at the same moment each keep their row. Returns the rows written.
    """
    with locked(path):
        rows = [r for r in read_json_rows(path) if same(r) != same(row)] + [row]
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(rows, indent=2), encoding="utf-8"))
    return rows
