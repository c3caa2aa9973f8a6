"""Build the course as a website from the committed notebooks and their saved outputs.

    python3 course.py book [--out DIR]       (or, in the course's environment: python3 tools/book.py)

Nothing is executed: Jupyter Book 1 (Sphinx + myst-nb) renders the outputs stored in
notebooks/[0-9]*.ipynb, with `execute_notebooks: "off"`. The notebooks are copied into a
temporary staging folder together with a generated landing page (the course map), `_config.yml`
and `_toc.yml`, so nothing is ever written into notebooks/. The site lands in build/book/ unless
--out says otherwise; open its index.html, or serve it: python3 -m http.server -d build/book.

MathJax comes from the sphinx-mathjax-offline package when it is installed, so the site needs
no network to show its formulas; without it, pages load MathJax from a CDN and, offline, show
the formulas as TeX source.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "build" / "book"
INSTALL = ('run "python3 course.py setup", or: '
           'pip install "jupyter-book>=1.0.4,<2" "sphinx-mathjax-offline>=0.0.2,<0.1"')
MATHJAX_OFFLINE = "sphinx-mathjax-offline"  # the package's module name has hyphens

# [![Open In Colab](https://…badge.svg)](https://colab…): a remote image would need the network,
# so the site shows the link as text (pages carry a Colab launch button as well).
LINKED_REMOTE_IMAGE = re.compile(r"\[!\[([^\]]*)\]\(https?://[^)]*\)\]\(([^)]+)\)")
RELATIVE_LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s]+)\)")


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


def title(notebook: dict) -> str:
    """The notebook's first markdown heading, without its #s."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    raise ValueError("a notebook of the course has no markdown heading")


def readme_lines() -> dict[str, str]:
    """The "what you learn and build" cell of each row of the README's table, by notebook file."""
    lines = {}
    for row in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*\d+\s*\|\s*\[[^\]]*\]\(notebooks/([^)]+\.ipynb)\)\s*\|([^|]*)\|", row)
        if match:
            lines[match[1]] = match[2].strip()
    return lines


def repository() -> str:
    """The repository's address, from pyproject.toml (the one place it is written)."""
    sys.path.insert(0, str(ROOT))  # the course's package, installed or not
    try:
        from tools.links import repository_url
    finally:
        sys.path.remove(str(ROOT))
    return repository_url(ROOT)


def landing_page(titles: dict[str, str], repository: str) -> str:
    described = readme_lines()
    entries = []
    for name, heading in titles.items():
        line = described.get(name, "")
        entries.append(f"* **[{heading}](notebooks/{name})**" + (f"  \n  {line}" if line else ""))
    return "\n".join([
        "# The course map",
        "",
        "A course in Jupyter notebooks, with a tested companion package, that takes you from "
        "counting n-grams to training a Transformer language model on WikiText-2 and fine-tuning "
        "BERT: one unbroken path on real data. These pages show each notebook with the outputs "
        "of its last committed run; to run one yourself, clone the "
        f"[repository]({repository}) (`python3 course.py lab`) or open it in Colab from its page.",
        "",
        *entries,
        "",
        "Every notebook reports perplexity on the same WikiText-2 splits with the same "
        "conventions, so the numbers line up.",
        "",
    ])


def stage_notebook(source: Path, staging: Path) -> str:
    """Copy one notebook into staging/notebooks/, adapted for the web; return its title."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = LINKED_REMOTE_IMAGE.sub(r"[\1](\2)", "".join(cell["source"]))
        for target in RELATIVE_LINK.findall(text):  # e.g. ../benchmarks/results/ngram.json
            path = (source.parent / target.split("#")[0]).resolve()
            if path.is_file() and path.suffix != ".ipynb" and ROOT in path.parents:
                copy = staging / path.relative_to(ROOT)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)  # the site then offers it as a download
        cell["source"] = text
    (staging / "notebooks" / source.name).write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return title(notebook)


def config(mathjax_offline: bool, repository: str) -> dict:
    return {
        "title": "llmcourse",
        "author": "the llmcourse authors",
        "copyright": "",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},  # show the committed outputs, run nothing
        "repository": {"url": repository, "branch": "main"},
        "html": {"use_repository_button": True, "home_page_in_navbar": True},
        "launch_buttons": {"colab_url": "https://colab.research.google.com"},
        "sphinx": {
            "extra_extensions": [MATHJAX_OFFLINE] if mathjax_offline else [],
            "local_extensions": {"book": str(Path(__file__).resolve().parent)},  # setup() below
            "recursive_update": True,  # merge the config below into Jupyter Book's, not replace it
            "config": {"html_show_copyright": False, "html_show_sphinx": False,
                       # pydata-sphinx-theme 0.17 adds a header bar holding a second search field
                       "html_theme_options": {"navbar_persistent": []}},
        },
    }


def dedupe_scripts(app, pagename, templatename, context, doctree):
    """Jupyter Book 1.0.4 puts sphinx-thebe's and togglebutton's inline scripts on every page twice,
    and a second `const THEBE_JS_URL` is a SyntaxError in the browser: keep the first of each."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # one copy has filename None, the other "": the same inline script
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


# pydata-sphinx-theme 0.17's head script leaves an empty theme mode on a first visit, and its
# script then logs "Got invalid theme mode" as an error; start from "auto", which it falls back to.
THEME_MODE = 'if (!document.documentElement.dataset.mode) document.documentElement.dataset.mode = "auto";'


def setup(app):
    """The book's own small Sphinx extension (this file, loaded by the build's _config.yml)."""
    app.connect("html-page-context", dedupe_scripts, priority=900)
    app.add_js_file(None, body=THEME_MODE, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def build(out: Path | None = None) -> Path:
    """Build the site into `out` (default build/book/) and return that folder (it holds index.html)."""
    start = time.perf_counter()
    if importlib.util.find_spec("jupyter_book") is None:
        raise SystemExit(f"Jupyter Book is not installed in {sys.executable}: {INSTALL}")
    import yaml
    from jupyter_book.sphinx import build_sphinx

    mathjax_offline = importlib.util.find_spec(MATHJAX_OFFLINE) is not None
    if not mathjax_offline:
        print(f"note: {MATHJAX_OFFLINE} is not installed; the pages will load MathJax from a CDN")
    out = Path(out or DEFAULT_OUT).resolve()
    if out == NOTEBOOKS or NOTEBOOKS in out.parents:
        raise SystemExit("the book is never written into notebooks/: choose another --out")
    if out.exists() and any(out.iterdir()) and not (out / ".buildinfo").is_file():
        # Sphinx leaves .buildinfo in every HTML build: anything else is not ours to replace
        raise SystemExit(f"{out} is not empty and holds no earlier build of the book: choose another --out")
    sources = notebooks()
    if not sources:
        raise SystemExit(f"no notebooks found in {NOTEBOOKS}")
    with tempfile.TemporaryDirectory(prefix="llmcourse-book-") as tmp:
        staging, html = Path(tmp) / "src", Path(tmp) / "build" / "html"  # myst-nb writes beside html/
        (staging / "notebooks").mkdir(parents=True)
        titles = {source.name: stage_notebook(source, staging) for source in sources}
        url = repository()
        (staging / "index.md").write_text(landing_page(titles, url), encoding="utf-8")
        toc = {"format": "jb-book", "root": "index",
               "chapters": [{"file": f"notebooks/{Path(name).stem}"} for name in titles]}
        (staging / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
        (staging / "_config.yml").write_text(yaml.safe_dump(config(mathjax_offline, url), sort_keys=False),
                                             encoding="utf-8")
        # the arguments `jupyter-book build` passes (jupyter_book/cli/main.py), with our folders
        result = build_sphinx(staging, html, noconfig=True, path_config=staging / "_config.yml",
                              confoverrides={"latex_individualpages": False},
                              doctreedir=Path(tmp) / "build" / "doctrees", freshenv=True, quiet=True)
        if result != 0 or not (html / "index.html").is_file():
            raise SystemExit(f"the book's build failed ({result!r}); see the messages above")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(html, out)
    print(f"Built the course's site ({len(sources)} notebooks) in {time.perf_counter() - start:.0f} s: "
          f"{out / 'index.html'}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help=f"where to write the site (default: {DEFAULT_OUT.relative_to(ROOT)}/)")
    build(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
