"""On Colab the install cell must leave Colab's own packages alone: resolved with pip against its versions.

Colab's image (August 2026) is pinned in `.ci/colab-constraints.txt`. The check builds an empty
environment where those packages appear installed at those versions (metadata only), asks pip what
installing this project would change (`pip install --dry-run --report`), and fails if pip would
upgrade, downgrade or reinstall any of them, or pick a package that cannot run on Colab's Python 3.13.
It needs the package index (skipped, saying so, where pip cannot reach one).
"""

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / ".ci" / "colab-constraints.txt"
COLAB_PYTHON = "3.13"


def colab_pins() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines()]
    return dict(line.split("==") for line in lines if line)


def _fake_colab(root: Path) -> Path:
    """An environment in which Colab's packages look installed (their metadata, no code)."""
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name, version in colab_pins().items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return python


def _index_unreachable() -> str | None:
    """Why pip's package index cannot be asked from here (None: it answers). Asked once, in seconds: an offline
    pip would otherwise retry every package page of the resolution, for many minutes."""
    import urllib.error
    import urllib.request

    configured = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                capture_output=True, text=True).stdout.strip()
    url = configured or "https://pypi.org/simple/"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10).close()
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} did not answer ({getattr(exc, 'reason', exc)})"
    return None


def test_installing_the_course_on_colab_changes_none_of_colabs_packages(tmp_path):
    if (why := _index_unreachable()):
        pytest.skip(f"no package index reachable: {why}")
    python = _fake_colab(tmp_path / "colab")
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run", "--quiet",
                           "--report", str(report), str(REPO)], capture_output=True, text=True, timeout=600)
    if done.returncode and ("Could not fetch URL" in done.stderr or "NewConnectionError" in done.stderr):
        pytest.skip(f"no package index reachable: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    installs = {i["metadata"]["name"].lower(): i["metadata"] for i in json.loads(report.read_text())["install"]}
    touched = sorted(set(installs) & set(colab_pins()))
    assert not touched, f"pip would replace Colab's {touched}: widen the requirement ranges in pyproject.toml"
    too_new = [f"{name} {m['version']} (requires Python {m.get('requires_python')})" for name, m in installs.items()
               if m.get("requires_python") and COLAB_PYTHON not in SpecifierSet(m["requires_python"])]
    assert not too_new, f"not installable on Colab's Python {COLAB_PYTHON}: {too_new}"
    assert "llmcourse" in installs


def test_requirements_admit_colabs_versions():
    """The offline half of the check: every requirement of the project admits Colab's pinned version."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert COLAB_PYTHON in SpecifierSet(project["requires-python"]) and "3.10" in SpecifierSet(project["requires-python"])
    pins = colab_pins()
    for text in project["dependencies"]:
        requirement = Requirement(text)
        if requirement.name.lower() in pins:
            version = pins[requirement.name.lower()]
            assert requirement.specifier.contains(version, prereleases=True), f"{text} refuses Colab's {version}"
    assert set(pins) <= {Requirement(t).name.lower() for t in project["dependencies"]}
