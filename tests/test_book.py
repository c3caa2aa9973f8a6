"""The course's website (tools/book.py), built once and opened page by page in headless Chromium.

Skips unless Jupyter Book, Selenium, /usr/bin/chromium and /usr/bin/chromedriver are all there
(Debian: apt-get install -y chromium chromium-driver). Nothing is downloaded: Selenium is given
the driver's path, and the site is served from this machine.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import re
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest

# Jupyter Book 1's LaTeX extension, loaded though only HTML is built, still calls docutils' traverse()
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:sphinx_jupyterbook_latex")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000"]
# a path of the machine that ran or built a notebook; the lookbehind spares URLs (…/home/…)
MACHINE_PATH = re.compile(r"(?<![\w.~-])(/(?:work|root|home|tmp|Users|content|private/var)/|[A-Z]:\\Users\\)")
USER_PATH = re.compile(r"(?<![\w.~-])(/(?:work|root|home|Users)/|[A-Z]:\\Users\\)")  # never right in code

# What the browser reports about a page, in one round trip. Code cells' sources are hidden while the
# text is read: a notebook's code may name /tmp on purpose (the Colab cell's pip report).
PAGE_SCRIPT = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
Promise.all(images.map(img => img.complete ? null :
    new Promise(ok => { img.addEventListener('load', ok); img.addEventListener('error', ok); })))
.then(() => {
  const inputs = Array.from(document.querySelectorAll('.cell_input'));
  const code = inputs.map(e => e.innerText).join('\\n');
  inputs.forEach(e => e.style.display = 'none');
  const text = document.body.innerText;
  inputs.forEach(e => e.style.display = '');
  const hrefs = sel => Array.from(document.querySelectorAll(sel), a => a.href);
  done({
    title: document.title,
    h1: Array.from(document.querySelectorAll('article h1'), e => e.textContent.replace(/#$/, '').trim()),
    images: images.map(img => ({src: img.src, ok: img.complete && img.naturalWidth > 0,
                                output: img.closest('.cell_output') !== null})),
    links: hrefs('a[href]'),
    article_links: hrefs('article a[href]'),
    sidebar: hrefs('nav.bd-docs-nav a[href]'),
    prev: hrefs('a.left-prev'), next: hrefs('a.right-next'),
    text: text, code: code,
    external: performance.getEntriesByType('resource').map(e => e.name)
                         .filter(url => !url.startsWith(location.origin)),
    raw_widget: text.includes('application/vnd.jupyter.widget')
                || document.querySelector('.jupyter-widgets') !== null,
  });
});
"""


def heading(notebook: dict) -> str:
    """The notebook's first heading as the site shows it (Sphinx's smart quotes: ' becomes ’)."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip().replace("'", "\u2019")
    raise AssertionError("no heading")


def image_outputs(notebook: dict) -> int:
    return sum(1 for cell in notebook["cells"] for output in cell.get("outputs", [])
               if {"image/png", "image/svg+xml"} & set(output.get("data", {})))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The book, built into a temporary folder and served on localhost: its base URL and folder."""
    for module, what in [("jupyter_book", 'Jupyter Book (pip install "jupyter-book>=1.0.4,<2")'),
                         ("selenium", 'Selenium (pip install "selenium>=4.20,<5")')]:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{what} is not installed")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.skip(f"{path} is missing (apt-get install -y chromium chromium-driver)")
    spec = importlib.util.spec_from_file_location("book", ROOT / "tools" / "book.py")
    book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(book)
    folder = book.build(tmp_path_factory.mktemp("book") / "html")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # the browser may drop a connection
            pass

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def pages(site, browser):
    """Every HTML page of the site, opened once: what the browser saw, by path relative to the site."""
    base, folder = site
    seen = {}
    for path in sorted(folder.rglob("*.html")):
        name = path.relative_to(folder).as_posix()
        if name.startswith(("_static/", "_sources/", "_downloads/")):
            continue
        browser.get(base + name)
        page = browser.execute_async_script(PAGE_SCRIPT)
        # errors from the site's own files (not the browser's own request for /favicon.ico)
        page["errors"] = [entry["message"] for entry in browser.get_log("browser")
                          if entry["level"] == "SEVERE" and base in entry["message"]
                          and not entry["message"].startswith(base + "favicon.ico ")]
        seen[name] = page
    return seen


def test_every_page_renders_without_errors(pages):
    assert {"index.html", "search.html"} | {f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS} <= set(pages)
    for name, page in pages.items():
        assert page["text"].strip(), f"{name} shows no text"
        assert not page["errors"], f"{name}: the browser reported {page['errors']}"
        assert not page["external"], f"{name} fetched from elsewhere (the site should work offline)"
        assert all(image["ok"] for image in page["images"]), \
            f"{name}: images that did not load: {[i['src'] for i in page['images'] if not i['ok']]}"
        leaks = sorted(set(MACHINE_PATH.findall(page["text"])) | set(USER_PATH.findall(page["code"])))
        assert not leaks, f"{name} shows a machine's paths {leaks}"
        assert not page["raw_widget"], f"{name} shows a widget's raw model instead of its fallback"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_page(pages, site, notebook):
    base = site[0]
    content = json.loads(notebook.read_text(encoding="utf-8"))
    page = pages[f"notebooks/{notebook.stem}.html"]
    title = heading(content)
    assert page["h1"][:1] == [title] and title in page["title"]
    figures = [image for image in page["images"] if image["output"]]
    assert len(figures) >= image_outputs(content), f"{len(figures)} figures shown, the notebook has more"
    assert all(image["ok"] for image in figures), [image["src"] for image in figures if not image["ok"]]
    # navigation: every notebook in the sidebar, and previous/next in the course's order
    sidebar = {urldefrag(link)[0] for link in page["sidebar"]}
    assert {f"{base}notebooks/{nb.stem}.html" for nb in NOTEBOOKS} <= sidebar
    position = NOTEBOOKS.index(notebook)
    previous = f"{base}notebooks/{NOTEBOOKS[position - 1].stem}.html" if position else f"{base}index.html"
    assert page["prev"] == [previous]
    if position + 1 < len(NOTEBOOKS):
        assert page["next"] == [f"{base}notebooks/{NOTEBOOKS[position + 1].stem}.html"]


def test_landing_page_is_the_course_map(pages, site):
    base = site[0]
    page = pages["index.html"]
    wanted = [f"{base}notebooks/{nb.stem}.html" for nb in NOTEBOOKS]
    linked = [link for link in page["article_links"] if link in wanted]
    assert list(dict.fromkeys(linked)) == wanted, "the landing page should list the 8 notebooks in order"
    for notebook in NOTEBOOKS:
        assert heading(json.loads(notebook.read_text(encoding="utf-8"))) in page["text"]


def test_internal_links_answer(pages, site):
    base = site[0]
    links = sorted({urldefrag(link)[0] for page in pages.values() for link in page["links"]
                    if urlsplit(link).netloc == urlsplit(base).netloc})
    dead = []
    for link in links:
        try:
            with urllib.request.urlopen(link, timeout=10) as answer:
                if answer.status != 200:
                    dead.append(f"{link}: {answer.status}")
        except urllib.error.URLError as error:
            dead.append(f"{link}: {error}")
    print(f"{len(pages)} pages, {sum(len(page['images']) for page in pages.values())} images, "
          f"{len(links)} internal links checked")
    assert len(links) > len(NOTEBOOKS) and not dead, dead


def test_formulas_are_typeset_offline(browser, site):
    """MathJax is served by the site itself (sphinx-mathjax-offline), so formulas render offline."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if importlib.util.find_spec("sphinx-mathjax-offline") is None:
        pytest.skip('sphinx-mathjax-offline is not installed: the pages load MathJax from a CDN')
    browser.get(site[0] + f"notebooks/{NOTEBOOKS[0].stem}.html")
    WebDriverWait(browser, 30).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "mjx-container"))
    assert "_static/mathjax/" in browser.execute_script(
        "return Array.from(document.scripts, s => s.src).join(' ')")


def test_search_finds_a_word(browser, site):
    """The search page, as the search box's form sends it, lists notebooks that use the word."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base = site[0]
    browser.get(base + "search.html?q=perplexity")
    WebDriverWait(browser, 30).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, "#search-results ul.search li"))
    results = [a.get_attribute("href") for a in
               browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")]
    assert any("notebooks/00_language_models.html" in link for link in results), results
    assert len({urldefrag(link)[0] for link in results}) >= 5  # perplexity is in most notebooks
