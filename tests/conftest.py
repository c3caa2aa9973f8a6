import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
