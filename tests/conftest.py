import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def predictions_as_a_learner_leaves_them(monkeypatch):
    """Unit tests see an experiment as a learner does: blank until predicted (the notebook tests fill it in)."""
    monkeypatch.delenv("LLMCOURSE_FILL_PREDICTIONS", raising=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder named by LLMCOURSE_DATA (.ci/run points it at ../shared/data)."""
    value = os.environ.get("LLMCOURSE_DATA")
    if not value:
        pytest.skip("LLMCOURSE_DATA is not set: the tests on the real data sets need it")
    return Path(value)


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """No offline folder, an empty cache: the download path is taken."""
    monkeypatch.delenv("LLMCOURSE_DATA", raising=False)
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def resealed():
    """A function that seals an edited JSON file's text again (its recorded sha256 made to fit), so that a test
    reaches the loader's own checks, which must still refuse what the file cannot be (the seal alone refuses
    any edit: tests/test_nothing_silent.py). Text that is not a sealed JSON object is returned as it is."""
    from llmcourse.files import SEAL, content_sha256

    def reseal(text: str) -> str:
        try:
            state = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(state, dict) and SEAL in state:
            state[SEAL] = content_sha256(state)
        return json.dumps(state, ensure_ascii=False)

    return reseal
