#!/usr/bin/env python3
"""Set up the course and open it, or test it: the README's two commands.

    python3 course.py lab     # create .venv, install the course, open JupyterLab on notebooks/
    python3 course.py test    # create the same .venv, run the unit tests and every notebook (nbval)
    python3 course.py refresh 02 04   # maintainers: re-run notebooks in full mode, outputs saved in place
    python3 course.py links   # maintainers: copy the repository address from pyproject.toml everywhere

Only Python 3.10+ and pip are needed. The environment lives in .venv beside this file and is
reused by later runs. torch is installed first and pinned (``torch==2.13.0``, or
``$LLMCOURSE_TORCH``) so that pip never picks a different build by itself; a torch that the
Python running this script already has (Colab, a conda environment) is kept instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH = os.environ.get("LLMCOURSE_TORCH", "torch==2.13.0")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*cmd: str | os.PathLike, env: dict | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=env)


def has_torch(python: str | os.PathLike) -> bool:
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    return probe.returncode == 0


def setup() -> Path:
    """Create (or update) .venv with the course installed, its test tools included."""
    start = time.perf_counter()
    python = venv_python()
    if not python.exists():
        keep_torch = has_torch(sys.executable)
        args = ["--system-site-packages"] if keep_torch else []
        if keep_torch:
            print("A torch is already installed for this Python: the environment keeps it.")
        run(sys.executable, "-m", "venv", *args, VENV)
    if not has_torch(python):
        # Alone and first, so that no dependency's looser requirement chooses the torch build.
        run(python, "-m", "pip", "install", TORCH)
    run(python, "-m", "pip", "install", "-e", ".[dev]")
    print(f"Environment ready in {time.perf_counter() - start:.0f} s: {VENV}", flush=True)
    return python


DATA_CHECK = """
import sys
from llmcourse.data import AVAILABILITY_HELP, check_available
problems = check_available()
if problems:
    print("The data sets cannot be had on this machine:", *("  - " + p for p in problems[:6]), sep="\\n")
    if len(problems) > 6:
        print(f"  ... and {len(problems) - 6} more")
    print(AVAILABILITY_HELP)
    sys.exit(2)
"""


def check_data(python: Path) -> None:
    """Stop in seconds, with the one message that says what to do, when the data sets cannot be had."""
    done = subprocess.run([str(python), "-c", DATA_CHECK], cwd=ROOT)
    if done.returncode:
        raise SystemExit(done.returncode)


def lab(extra: list[str]) -> None:
    python = setup()
    check_data(python)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        print("Running as root (a container or a cloud machine): JupyterLab needs --allow-root there.")
        extra = ["--allow-root", *extra]
    os.execv(str(python), [str(python), "-m", "jupyterlab", f"--notebook-dir={ROOT / 'notebooks'}", *extra])


def test(extra: list[str]) -> int:
    python = setup()
    check_data(python)
    env = dict(os.environ)
    env.setdefault("LLMCOURSE_QUICK", "1")  # notebooks in quick mode unless LLMCOURSE_QUICK=0 is set
    mode = "quick" if env["LLMCOURSE_QUICK"] not in {"0", "false", "no", "off", ""} else "full"
    print(f"Running the unit tests and every notebook (nbval, {mode} mode).", flush=True)
    cmd = [str(python), "-m", "pytest", "tests", "notebooks", "--nbval-lax", "--nbval-current-env", *extra]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def notebook_paths(names: list[str]) -> list[Path]:
    """``["02", "04_transformer_lm"]`` -> the notebooks whose names start with those prefixes."""
    every = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    paths = []
    for name in names:
        found = [p for p in every if p.name.startswith(Path(name).stem)]
        if len(found) != 1:
            raise SystemExit(f"{name!r} names {len(found)} notebooks; choose one of: "
                             + ", ".join(p.stem for p in every))
        paths.append(found[0])
    return paths or every


def refresh(names: list[str]) -> int:
    """Run notebooks top to bottom in full mode and save their outputs in place, as committed
    (tidied by ``llmcourse._tidy`` so that they read well without a kernel).

    Run them in course order: each one adds its row to the results table (data/results.json)."""
    paths = notebook_paths(names)
    python = setup()
    env = dict(os.environ, LLMCOURSE_QUICK="0")
    for path in paths:
        start = time.perf_counter()
        run(python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
            "--ExecutePreprocessor.timeout=-1", path, env=env)
        # finished bars as text, static widget fallbacks, no machine paths, a stable kernelspec
        run(python, "-m", "llmcourse._tidy", path)
        print(f"{path.name}: ran in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["lab", "test", "setup", "refresh", "links"],
                        help="lab: set up and open JupyterLab; test: set up and run all tests; setup: only set up; "
                             "refresh: re-run notebooks (all, or those named) in full mode, saving their outputs; "
                             "links: copy the repository's address from pyproject.toml into badges and install cells")
    args, extra = parser.parse_known_args()
    if args.command == "refresh":
        return refresh(extra)
    if args.command == "links":
        run(setup(), "-m", "llmcourse._links")
        return 0
    if args.command == "setup":
        setup()
        return 0
    if args.command == "lab":
        lab(extra)
        return 0
    return test(extra)


if __name__ == "__main__":
    sys.exit(main())
