"""One way to the Hub (llmcourse.hub): the address, the offline switches, and whether it answers, asked of
a mirror on localhost; data, bert and pretrained all follow it."""

import http.server
import threading

import pytest

from llmcourse import bert, data, hub, pretrained
from llmcourse.bert import ModelNotFound

DEAD = "http://127.0.0.1:9"  # nothing listens there


class _Mirror(http.server.BaseHTTPRequestHandler):
    requests: list = []

    def do_HEAD(self):
        type(self).requests.append(self.path)
        self.send_response(200 if self.path == "/" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(monkeypatch):
    """A room's mirror on localhost, named by HF_ENDPOINT; no offline switch set."""
    for name in hub.OFFLINE_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    _Mirror.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url + "/")
    yield url
    server.shutdown()
    server.server_close()


def test_endpoint_is_hf_endpoint_else_the_hub(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hub.endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.room:8080/")
    assert hub.endpoint() == "http://mirror.room:8080"


@pytest.mark.parametrize("switch", hub.OFFLINE_SWITCHES)
def test_every_offline_switch_means_the_same(mirror, monkeypatch, switch):
    monkeypatch.setenv(switch, "1")
    assert hub.offline_switch() == switch
    assert hub.unreachable() == f"this machine is marked offline ({switch}=1)"
    assert _Mirror.requests == []  # nothing asked of the mirror
    monkeypatch.setenv(switch, "0")
    assert hub.offline_switch() is None


def test_the_mirror_answers_or_says_where_it_did_not(mirror, monkeypatch):
    assert hub.unreachable() is None and _Mirror.requests == ["/"]
    monkeypatch.setenv("HF_ENDPOINT", mirror + "/missing")  # a 404 is an answer
    assert hub.unreachable() is None
    monkeypatch.setenv("HF_ENDPOINT", DEAD)
    assert hub.unreachable(timeout=2).startswith(f"{DEAD} did not answer")


def test_bert_and_pretrained_ask_the_same_mirror(mirror, monkeypatch, tmp_path):
    """A Hub name that is not cached: accepted while the room's mirror answers, a clear error naming it when
    it does not; the same for GPT-2 in notebook 07 and for the data sets."""
    monkeypatch.setattr(hub, "cached", lambda name: False)  # the one question both ask
    assert bert.resolve_model("bert-base-uncased") == "bert-base-uncased"
    assert pretrained._where("gpt2") == "gpt2"
    assert _Mirror.requests == ["/", "/"]

    monkeypatch.setenv("HF_ENDPOINT", DEAD)
    with pytest.raises(ModelNotFound, match=f"the Hub cannot be asked: {DEAD} did not answer.*HF_ENDPOINT"):
        bert.resolve_model("bert-base-uncased")
    with pytest.raises(ModelNotFound, match=f"cannot be downloaded: {DEAD} did not answer"):
        pretrained._where("gpt2")

    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")  # one switch, read alike by all three
    with pytest.raises(ModelNotFound, match=r"marked offline \(TRANSFORMERS_OFFLINE=1\)"):
        bert.resolve_model("bert-base-uncased")
    with pytest.raises(ModelNotFound, match=r"marked offline \(TRANSFORMERS_OFFLINE=1\)"):
        pretrained._where("gpt2")
    monkeypatch.delenv("LLMCOURSE_DATA", raising=False)
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "empty-cache"))
    assert all("marked offline (TRANSFORMERS_OFFLINE=1)" in p for p in data.check_available(["sst2"]))


def test_missing_data_asks_the_hub_once_for_every_data_set(mirror, monkeypatch, tmp_path):
    monkeypatch.delenv("LLMCOURSE_DATA", raising=False)
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "empty-cache"))
    assert data.missing_by_name() == {} and _Mirror.requests == ["/"]  # both can be downloaded: one question
    monkeypatch.setenv("HF_ENDPOINT", DEAD)
    missing = data.missing_by_name(timeout=2)
    assert sorted(missing) == ["sst2", "wikitext-2"] and len(missing["sst2"]) == 3
    assert data.check_available(timeout=2) == [p for found in missing.values() for p in found]
