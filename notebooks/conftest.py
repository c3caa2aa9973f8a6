"""Under nbval, every notebook runs as a learner meets it when it is opened first, in a fresh runtime:
with a course cache of its own (``LLMCOURSE_CACHE``) that holds no row of an earlier notebook, no
compute-table row and no saved run. The downloaded data sets are the one thing it shares (linked from
the usual cache, where they are there), so that an offline machine with them cached still runs.
Where a notebook needs an earlier one's result it must show the course's reference row, labelled
(``llmcourse.results.by_notebook``), or say what to run: this is what proves it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from llmcourse.config import cache_dir
from llmcourse.exercises import FILL_PREDICTIONS

_DATA_FOLDERS = ("wikitext-2", "sst2")  # llmcourse.data's download folders inside the cache
_ROOT = Path(tempfile.mkdtemp(prefix="llmcourse-notebook-caches-"))
_BEFORE = os.environ.get("LLMCOURSE_CACHE")
_SHARED = cache_dir()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before a notebook's kernel starts (its first cell's set-up): point it at an empty cache of its own."""
    notebook = item.parent
    if type(notebook).__name__ != "IPyNbFile" or getattr(notebook, "kernel", None) is not None:
        return
    own = _ROOT / Path(str(notebook.fspath)).stem
    own.mkdir(parents=True, exist_ok=True)
    for name in _DATA_FOLDERS:
        if (_SHARED / name).is_dir() and not (own / name).exists():
            (own / name).symlink_to(_SHARED / name, target_is_directory=True)
    os.environ["LLMCOURSE_CACHE"] = str(own)
    # A "predict, then measure" cell measures nothing until the learner writes a prediction (so a committed
    # notebook shows the question, not the answer); under the tests it measures anyway, so that CI runs it.
    os.environ[FILL_PREDICTIONS] = "1"


def pytest_sessionfinish(session, exitstatus):
    os.environ.pop(FILL_PREDICTIONS, None)
    if _BEFORE is None:
        os.environ.pop("LLMCOURSE_CACHE", None)
    else:
        os.environ["LLMCOURSE_CACHE"] = _BEFORE
    shutil.rmtree(_ROOT, ignore_errors=True)
