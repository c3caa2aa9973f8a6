"""A workshop's kit: the course staged in one folder for a room without internet, and set up from it.

    python3 course.py stage DIR [--platform linux-cpu]   # an instructor, online, once per platform
    python3 course.py setup --from DIR                   # each learner, with no network at all

``DIR`` then holds:

* ``course/``: the course at the commit it was staged from (``git archive``), to copy onto each laptop;
* ``data/``: WikiText-2 and SST-2 in their official layout, checked as they were copied (``llmcourse.data``);
* ``models/``: the Hub checkpoints the notebooks load where they can (GPT-2 in notebook 07, ``bert-base-uncased``
  in notebook 05 on a GPU), as ``huggingface_hub``'s cache, when the Hub was in reach while staging; notebook
  05's all-MiniLM-L6-v2 needs none, it is a wheel;
* ``wheels/``: every Python package the course installs, for the platforms staged (CPU torch on Linux);
* ``stage.json``: what is there, its sha256 sums and sizes, and how long each step took.

The functions that need only the standard library run with the Python that runs ``course.py``; the rest
(:func:`stage_data`, :func:`stage_models`, :func:`install_into_caches`) run inside the course's environment
(``python -m tools.room ...``), where ``llmcourse`` and ``huggingface_hub`` are installed.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "stage.json"

#: The platforms a kit's wheels can be for: the platform tags pip may take for it (pip older than 24 does not
#: take a manylinux_2_17 wheel on a manylinux_2_28 tag by itself) and, for Linux without an NVIDIA GPU,
#: PyTorch's index of CPU builds (PyPI's Linux torch is the CUDA build: gigabytes a laptop without an NVIDIA
#: GPU never uses).
_LINUX = ["manylinux_2_28_{}", "manylinux_2_17_{}", "manylinux2014_{}", "manylinux_2_5_{}", "manylinux1_{}"]
_MACOS = [f"macosx_{v}_0_{{}}" for v in (14, 13, 12, 11)] + ["macosx_10_9_universal2", "macosx_10_13_universal2"]
PLATFORMS = {
    "linux-cpu": ([t.format("x86_64") for t in _LINUX], "https://download.pytorch.org/whl/cpu"),
    "linux-cuda": ([t.format("x86_64") for t in _LINUX], None),
    "linux-arm64": ([t.format("aarch64") for t in _LINUX], None),
    "macos-arm64": ([t.format("arm64") for t in _MACOS], None),
    "windows": (["win_amd64"], None),
}

#: The Hub checkpoints a kit carries, and the files of each that ``from_pretrained`` reads (not the TensorFlow,
#: Flax, ONNX or Core ML copies that the repositories also hold).
MODEL_FILES = ["*.json", "*.txt", "*.safetensors"]


class KitError(RuntimeError):
    """A kit folder that cannot be used here; the message says why and what to do."""


def this_platform() -> list[str]:
    """The kit platforms whose wheels install on this machine."""
    machine = platform.machine().lower()
    if sys.platform.startswith("linux"):
        return ["linux-arm64"] if machine in {"aarch64", "arm64"} else ["linux-cpu", "linux-cuda"]
    if sys.platform == "darwin":
        return ["macos-arm64"] if machine == "arm64" else []
    if sys.platform == "win32":
        return ["windows"]
    return []


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def read_manifest(kit: Path) -> dict:
    path = Path(kit) / MANIFEST
    if not path.is_file():
        raise KitError(f"{kit} is not a kit staged by `python3 course.py stage` (it has no {MANIFEST}). Name the "
                       "folder that holds course/, data/, wheels/ and stage.json.")
    return json.loads(path.read_text())


def write_manifest(kit: Path, manifest: dict) -> None:
    path = Path(kit) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def wheels_for_here(manifest: dict) -> dict:
    """The kit's wheel set that installs on this machine (its platform and its Python), else a
    :class:`KitError` naming what the kit has and the command that stages what is missing."""
    here, version = this_platform(), python_version()
    sets = manifest.get("wheels", [])
    for entry in sets:
        if entry["platform"] in here and entry["python"] == version:
            return entry
    have = ", ".join(f"{e['platform']} with Python {e['python']}" for e in sets) or "no wheels"
    want = here[0] if here else f"{sys.platform}-{platform.machine()}"
    raise KitError(f"The kit has {have}; this machine is {want} with Python {version}. On a machine with internet, "
                   f"add this one to the kit: python3 course.py stage DIR --platform {want} --python {version}")


def offline_pip_env(kit: Path) -> dict:
    """The environment for a pip that installs from the kit's wheels only, never from an index."""
    return dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(Path(kit, "wheels").resolve()),
                PIP_DISABLE_PIP_VERSION_CHECK="1")


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink())


# --------------------------------------------------------------------------------------------
# Staging (an instructor's machine, online)
# --------------------------------------------------------------------------------------------
def stage_course(kit: Path) -> str:
    """``kit/course``: the course's files at ``HEAD`` (``git archive``; uncommitted changes are not in it)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        raise KitError(f"{ROOT} is not a git checkout, so the kit cannot hold the course at a known commit: "
                       "clone the course with git, then stage it.")
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print("Note: the kit holds the last commit; your uncommitted changes are not in it.")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True,
                             check=True).stdout
    target = Path(kit, "course")
    staging = Path(kit, ".course.partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(staging, filter="data")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)  # whole or not at all
    return head.stdout.strip()


def wheel_commands(python: str | os.PathLike, kit: Path, platform_name: str, version: str, torch: str,
                   requirements: list[str], no_deps: list[str]) -> list[list[str]]:
    """The ``pip download`` commands that fill ``kit/wheels`` for one platform and Python: torch alone first
    (from the platform's torch index where it has one), then the course's requirements, torch's own included,
    with that torch pinned and found in the kit, then the packages the course installs without their
    dependencies."""
    if platform_name not in PLATFORMS:
        raise KitError(f"Unknown platform {platform_name!r}: choose one of {', '.join(PLATFORMS)}.")
    tags, torch_index = PLATFORMS[platform_name]
    wheels = str(Path(kit, "wheels"))
    base = [str(python), "-m", "pip", "download", "--dest", wheels, "--only-binary=:all:",
            *(arg for tag in tags for arg in ("--platform", tag)), "--python-version", version, "--implementation", "cp"]
    index = ["--extra-index-url", torch_index] if torch_index else []
    return [[*base, *index, "--no-deps", torch], [*base, "--find-links", wheels, torch, *requirements],
            [*base, "--no-deps", *no_deps]]


def stage_data(kit: Path) -> dict[str, str]:
    """``kit/data`` from wherever the course finds its data sets (in the course's environment)."""
    from llmcourse.data import export_folder

    return export_folder(Path(kit, "data"))


def hub_models() -> list[str]:
    """The Hub checkpoints the notebooks load where they can: GPT-2 (notebook 07) and ``bert-base-uncased``
    (notebook 05, on a GPU)."""
    from llmcourse.bert import GPU_MODEL
    from llmcourse.pretrained import DEFAULT_CAUSAL_LM

    return [DEFAULT_CAUSAL_LM, GPU_MODEL]


def stage_models(kit: Path, names: list[str]) -> dict[str, dict]:
    """Each Hub checkpoint into ``kit/models`` (``huggingface_hub``'s cache layout) by ``snapshot_download``, from
    ``$HF_ENDPOINT`` where a mirror is set; where the Hub cannot be asked, the reason instead."""
    from huggingface_hub import snapshot_download

    from llmcourse import hub

    found = {}
    for name in names:
        if (why := hub.unreachable()):
            found[name] = {"skipped": why}
            print(f"  {name}: skipped ({why})")
            continue
        start = time.perf_counter()
        folder = Path(snapshot_download(name, allow_patterns=MODEL_FILES, cache_dir=Path(kit, "models"),
                                        endpoint=hub.endpoint()))
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        size = sum((folder / f).stat().st_size for f in files)
        found[name] = {"revision": folder.name, "files": files, "bytes": size}
        print(f"  {name}: {len(files)} files, {size / 1e6:,.0f} MB, revision {folder.name[:12]} "
              f"({time.perf_counter() - start:.0f} s)")
    return found


# --------------------------------------------------------------------------------------------
# Setting up from a kit (a learner's laptop, no network)
# --------------------------------------------------------------------------------------------
def install_into_caches(kit: Path) -> dict[str, float]:
    """The kit's data sets into the course's cache (each checked, against the kit's sha256 too) and its
    checkpoints into ``huggingface_hub``'s cache, where ``from_pretrained`` finds them offline. Returns seconds
    per step. Runs in the course's environment."""
    from huggingface_hub import constants

    from llmcourse.config import cache_dir
    from llmcourse.data import import_folder

    manifest, seconds = read_manifest(kit), {}
    start = time.perf_counter()
    paths = import_folder(Path(kit, "data"), manifest.get("data"))
    seconds["data"] = time.perf_counter() - start
    print(f"  data: {len(paths)} files checked and copied into {cache_dir()} ({seconds['data']:.1f} s)")
    start = time.perf_counter()
    models = Path(kit, "models")
    staged = {name: m for name, m in manifest.get("models", {}).items() if "revision" in m}
    if staged and models.is_dir():
        # symlinks stay links: the cache's snapshots point into its blobs by relative paths
        shutil.copytree(models, constants.HF_HUB_CACHE, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".locks"))
    seconds["models"] = time.perf_counter() - start
    for name, m in manifest.get("models", {}).items():
        print(f"  {name}: " + (f"copied into {constants.HF_HUB_CACHE}" if "revision" in m
                                else f"not in the kit ({m['skipped']}); the notebook that loads it says so"))
    return seconds


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.room data KIT | models KIT NAME... | install KIT``: the steps that need the course's
    environment; each prints one JSON line (the last line of its output) for ``course.py``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] not in {"data", "models", "install"}:
        print(__doc__)
        return 2
    kit = Path(args[1])
    try:
        if args[0] == "data":
            answer = stage_data(kit)
        elif args[0] == "models":
            answer = stage_models(kit, args[2:] or hub_models())
        else:
            answer = install_into_caches(kit)
    except Exception as exc:  # a DataError, a KitError, a download that failed: one message, no traceback
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
