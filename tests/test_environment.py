"""The course's environment is described twice (pip and conda): they must not drift."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert set(pip_section) == wanted, (
        f"only in pyproject.toml: {sorted(wanted - set(pip_section))}; "
        f"only in environment.yml: {sorted(set(pip_section) - wanted)}")


def test_torch_is_a_range_not_a_pin():
    """A learner's Colab torch must satisfy the requirement: never an exact pin in the project."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    torch_req = next(r for r in project["dependencies"] if _name(r) == "torch")
    assert ">=" in torch_req and "==" not in torch_req
