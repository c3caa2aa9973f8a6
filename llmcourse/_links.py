"""The repository's address, written once (``pyproject.toml``, ``[project.urls] Repository``) and copied
by ``python3 course.py links`` into every place that needs it: the README's Colab badges, each
notebook's badge and each notebook's first cell, which installs the course on Colab.

Not part of the course's teaching: it is how the repository keeps its links from drifting
(``tests/test_links.py`` fails when a file disagrees with ``pyproject.toml``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["repository_url", "install_block", "rewrite_text", "rewrite_notebook", "rewrite_all"]

_BADGE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/notebooks/")
_INSTALL = re.compile(r"^import sys\nif \"google\.colab\" in sys\.modules:.*?(?=^from llmcourse)", re.S | re.M)


def repository_url(root: Path = ROOT) -> str:
    """``https://github.com/OWNER/NAME`` from ``pyproject.toml``."""
    import tomllib

    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"].get("urls", {})
    url = urls.get("Repository", "").rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"pyproject.toml's [project.urls] Repository is {url!r}: give the GitHub address, "
                         "https://github.com/OWNER/NAME.")
    return url


def install_block(url: str) -> str:
    """The lines of a notebook's first cell that install the course on Colab, and say what and how long."""
    return (
        'import sys\n'
        'if "google.colab" in sys.modules:  # install the course; Colab\'s own packages stay as they are\n'
        '    import json, subprocess, time\n'
        '    start = time.perf_counter()\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--report", "/tmp/llmcourse-pip.json",\n'
        f'                    "llmcourse @ git+{url}"], check=True)\n'
        '    added = [f"{p[\'metadata\'][\'name\']} {p[\'metadata\'][\'version\']}"\n'
        '             for p in json.load(open("/tmp/llmcourse-pip.json"))["install"]]\n'
        '    print(f"Installed in {time.perf_counter() - start:.0f} s: {\', \'.join(added)}")\n'
    )


def rewrite_text(text: str, url: str) -> str:
    """``text`` with every Colab badge pointing at ``url``'s notebooks."""
    owner_name = url.removeprefix("https://github.com/")
    return _BADGE.sub(f"https://colab.research.google.com/github/{owner_name}/blob/main/notebooks/", text)


def rewrite_notebook(path: Path, url: str) -> bool:
    """Rewrite one notebook's badge and install block (first code cell); True if it changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    before = [c.source for c in nb.cells]
    for cell in nb.cells:
        cell.source = rewrite_text(cell.source, url)
    first = next(c for c in nb.cells if c.cell_type == "code")
    if not _INSTALL.search(first.source):
        raise ValueError(f"{path.name}: its first code cell has no Colab install block to rewrite "
                         "(it should start with `import sys` / `if \"google.colab\" in sys.modules:`).")
    first.source = _INSTALL.sub(lambda _: install_block(url), first.source, count=1)
    if [c.source for c in nb.cells] == before:
        return False
    nbformat.write(nb, path)
    return True


def rewrite_all(root: Path = ROOT) -> list[str]:
    """Rewrite the README and every notebook from ``pyproject.toml``'s address; the names of files changed."""
    url, changed = repository_url(root), []
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if rewrite_text(text, url) != text:
        readme.write_text(rewrite_text(text, url), encoding="utf-8")
        changed.append(readme.name)
    for path in sorted((root / "notebooks").glob("[0-9]*.ipynb")):
        if rewrite_notebook(path, url):
            changed.append(path.name)
    return changed


if __name__ == "__main__":
    names = rewrite_all()
    print(f"links from {repository_url()}: " + (", ".join(names) + " rewritten" if names else "every file agrees"))
    sys.exit(0)
