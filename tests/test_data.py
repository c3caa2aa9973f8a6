import hashlib
import http.server
import shutil
import threading
import urllib.parse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from llmcourse import data, hub
from llmcourse.data import (DATASETS, SST2, BPTTIterator, DataError, LMWindowDataset, WikiText2, batchify,
                            dataset_path, get_batch, numericalize, tokenize_lines, wikitext2_vocab)
from llmcourse.text import build_vocab_from_iterator


# --- the real data, from LLMCOURSE_DATA -------------------------------------------------------
def test_wikitext2_sizes_are_the_published_ones(shared_data):
    train, valid, test = WikiText2()
    for lines, n_lines, n_tokens in [(train, 36_718, 2_088_628), (valid, 3_760, 217_646), (test, 4_358, 245_569)]:
        assert len(lines) == n_lines
        assert sum(len(t) for t in tokenize_lines(lines)) == n_tokens  # one <eos> per line


def test_wikitext2_vocabulary_has_33278_types(shared_data):
    vocab = wikitext2_vocab()
    assert len(vocab) == 33_278 and vocab["<unk>"] == 0 and vocab["<eos>"] == 1
    over_all = build_vocab_from_iterator(tokenize_lines(sum(WikiText2(), [])), specials=["<unk>", "<eos>"])
    assert len(over_all) == 33_278  # valid and test add no word that train lacks
    ids = numericalize(tokenize_lines(WikiText2("valid")), vocab)
    assert ids.shape == (217_646,) and int((ids == 0).sum()) == 11_718  # the published <unk> count


def test_sst2_sizes_and_labels(shared_data):
    train, dev, test = SST2()
    assert (len(train), len(dev), len(test)) == (67_349, 872, 1_821)
    assert sum(label for _, label in train) == 37_569 and sum(label for _, label in dev) == 444
    assert {label for _, label in test} == {-1}


def _copy_wikitext(shared_data, tmp_path, splits=("train", "valid", "test")):
    folder = tmp_path / "offline" / "wikitext-2"
    folder.mkdir(parents=True)
    for split in splits:
        name = DATASETS["wikitext-2"].splits[split].filename
        shutil.copy(shared_data / "wikitext-2" / name, folder / name)
    return folder


def test_a_folder_missing_a_split_is_one_clear_error(shared_data, tmp_path, monkeypatch):
    _copy_wikitext(shared_data, tmp_path, splits=("train",))
    monkeypatch.setenv("LLMCOURSE_DATA", str(tmp_path / "offline"))
    assert len(WikiText2("train")) == 36_718
    with pytest.raises(DataError, match=r"has no wikitext-2/wiki\.valid\.tokens.*unset LLMCOURSE_DATA"):
        WikiText2("valid")


def test_a_corrupted_local_file_is_named(shared_data, tmp_path, monkeypatch):
    folder = _copy_wikitext(shared_data, tmp_path, splits=("valid",))
    path = folder / "wiki.valid.tokens"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")  # a truncated copy
    monkeypatch.setenv("LLMCOURSE_DATA", str(tmp_path / "offline"))
    with pytest.raises(DataError, match=r"wiki\.valid\.tokens is incomplete or corrupted.*expected 3,760"):
        WikiText2("valid")


def test_unknown_names_are_clear():
    with pytest.raises(KeyError, match="Unknown data set 'wikitext-103'"):
        dataset_path("wikitext-103", "train")
    with pytest.raises(KeyError, match="no split 'validation'"):
        dataset_path("wikitext-2", "validation")


# --- the download path, through huggingface_hub from a fake Hub on localhost ------------------
class _FakeHub(http.server.BaseHTTPRequestHandler):
    """Answers as the Hub's ``resolve`` endpoint does for a file: HEAD with the commit, ETag and size, GET
    with the bytes, 404 with the Hub's error code. ``requests`` records every path asked for."""

    root: Path
    requests: list

    def _file(self) -> Path | None:
        self.requests.append((self.command, self.path))
        path = self.root / urllib.parse.unquote(self.path.split("?")[0]).lstrip("/")
        return path if path.is_file() else None

    def _headers(self, path: Path | None) -> None:
        if path is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
        else:
            self.send_response(200)
            self.send_header("X-Repo-Commit", self.path.split("/resolve/")[1].split("/")[0])
            self.send_header("ETag", '"' + hashlib.sha256(path.read_bytes()).hexdigest() + '"')
            self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()

    def do_HEAD(self):
        self._headers(self._file())

    def do_GET(self):
        path = self._file()
        self._headers(path)
        if path is not None:
            self.wfile.write(path.read_bytes())

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A Hub on localhost serving ``tmp_path / "hub"``; the machine is online for huggingface_hub."""
    import huggingface_hub.constants

    root = tmp_path / "hub"
    root.mkdir()
    handler = type("Handler", (_FakeHub,), {"root": root, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for variable in hub.OFFLINE_SWITCHES:
        monkeypatch.delenv(variable, raising=False)  # CI sets them
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read when it was imported
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield handler
    server.shutdown()
    server.server_close()


def _fake_mirror(fake_hub, spec_name, split, table) -> tuple[Path, str]:
    """Put ``table`` on the fake Hub where the registry says the split's Parquet file is."""
    spec = DATASETS[spec_name]
    entry = spec.splits[split]
    target = fake_hub.root / "datasets" / spec.repo / "resolve" / spec.revision / entry.remote
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target)
    return target, hashlib.sha256(target.read_bytes()).hexdigest()


def _pin(monkeypatch, spec_name, split, sha256):
    """Point the registry's checksum at the fake file (the real mirror's file cannot be made here)."""
    spec = DATASETS[spec_name]
    splits = dict(spec.splits)
    splits[split] = data.Split(**{**splits[split].__dict__, "sha256": sha256})
    monkeypatch.setitem(DATASETS, spec_name, data.DatasetSpec(**{**spec.__dict__, "splits": splits}))


def _leftovers(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


def test_download_verifies_converts_and_caches(shared_data, no_data_env, fake_hub, monkeypatch):
    lines = (shared_data / "wikitext-2" / "wiki.valid.tokens").read_text(encoding="utf-8").split("\n")[:-1]
    rows = [line + "\n" if line.strip() else "" for line in lines]  # the mirror's row format
    _, digest = _fake_mirror(fake_hub, "wikitext-2", "valid", pa.table({"text": rows}))
    _pin(monkeypatch, "wikitext-2", "valid", digest)
    got = WikiText2("valid")
    assert [line.split() for line in got] == [line.split() for line in lines]
    revision = DATASETS["wikitext-2"].revision
    file = f"/datasets/Salesforce/wikitext/resolve/{revision}/wikitext-2-v1/validation-00000-of-00001.parquet"
    assert len(revision) == 40  # a commit, not a branch
    assert fake_hub.requests == [("HEAD", "/"), ("HEAD", file), ("GET", file)]  # is it there; the file, pinned
    cached = no_data_env / "wikitext-2" / "wiki.valid.tokens"
    assert _leftovers(no_data_env) == [cached.with_name(".wiki.valid.tokens.sha256"), cached]  # and its hash
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a cache hit needs no network
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert len(WikiText2("valid")) == 3_760
    data = cached.read_bytes()
    cached.write_bytes(data.replace(b" the ", b" thE ", 1))  # one byte: the same lines and words
    with pytest.raises(DataError, match=r"wiki\.valid\.tokens has been changed.*delete it and run again"):
        WikiText2("valid")


def test_a_checksum_mismatch_caches_nothing(shared_data, no_data_env, fake_hub):
    _fake_mirror(fake_hub, "wikitext-2", "valid", pa.table({"text": ["just one line\n"]}))
    with pytest.raises(DataError, match=r"corrupted: its sha256 is [0-9a-f]{64}, expected 717de9a0"):
        WikiText2("valid")
    assert _leftovers(no_data_env) == []


def test_wrong_row_counts_cache_nothing(no_data_env, fake_hub):
    table = pa.table({"sentence": ["good film ", "bad film "], "label": [1, 0], "idx": [0, 1]})
    _fake_mirror(fake_hub, "sst2", "dev", table)
    with pytest.raises(DataError, match=r"dev\.tsv is incomplete or corrupted: it has 2 rows \(expected 872\)"):
        SST2("dev")
    assert _leftovers(no_data_env) == []


def test_sst2_download_round_trip(shared_data, no_data_env, fake_hub, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_DATA", str(shared_data))
    real = SST2("dev")
    monkeypatch.delenv("LLMCOURSE_DATA")
    table = pa.table({"sentence": [s for s, _ in real], "label": [l for _, l in real], "idx": list(range(872))})
    _fake_mirror(fake_hub, "sst2", "dev", table)
    assert SST2("dev") == real


def test_offline_without_data_says_what_to_do(no_data_env, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(DataError, match="Could not download .*127.0.0.1:9 did not answer.*point LLMCOURSE_DATA at it"):
        WikiText2("test")
    assert _leftovers(no_data_env) == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # marked offline: nothing is asked of the Hub
    with pytest.raises(DataError, match="marked offline \\(HF_HUB_OFFLINE=1\\).*point LLMCOURSE_DATA at it"):
        WikiText2("test")
    assert fake_hub.requests == [] and _leftovers(no_data_env) == []


def test_a_file_the_hub_lacks_is_named(no_data_env, fake_hub):
    with pytest.raises(DataError, match=r"Could not download nyu-mll/glue/sst2/validation-00000-of-00001\.parquet "
                                        r"\(revision bcdcba79d07b\).*registry"):
        SST2("dev")
    assert _leftovers(no_data_env) == []


# --- batching ---------------------------------------------------------------------------------
def test_batchify_and_bptt_windows_cover_the_stream_in_order():
    stream = torch.arange(103)
    source = batchify(stream, 4)
    assert source.shape == (4, 25) and source[1, 0] == 25 and source[0, -1] == 24
    x, y = get_batch(source, 0, 10)
    assert x.shape == (4, 10) and torch.equal(y, x + 1)
    windows = list(BPTTIterator(source, 10))
    assert len(windows) == len(BPTTIterator(source, 10)) == 3 and windows[-1][0].shape == (4, 4)
    assert torch.equal(torch.cat([y for _, y in windows], dim=1), source[:, 1:])
    with pytest.raises(ValueError, match="batchify"):
        BPTTIterator(stream, 10)


def test_window_dataset_predicts_every_token_once():
    ids = torch.arange(50)
    ds = LMWindowDataset(ids, seq_len=7)
    assert len(ds) == 7
    targets = torch.cat([ds[k][1] for k in range(len(ds))])
    assert torch.equal(targets, torch.arange(1, 50))
    x, y = ds[-1]
    assert torch.equal(y, x + 1)
    with pytest.raises(IndexError):
        ds[7]
    with pytest.raises(ValueError, match="too few"):
        LMWindowDataset(torch.arange(5), seq_len=8)


def test_check_available_says_what_stops_the_data(monkeypatch, tmp_path):
    from llmcourse.data import check_available

    monkeypatch.setenv("LLMCOURSE_DATA", str(tmp_path / "nothing"))
    problems = check_available(["wikitext-2"])
    assert len(problems) == 3 and "has no wikitext-2/wiki.train.tokens" in problems[0]
    monkeypatch.delenv("LLMCOURSE_DATA")
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "cache"))
    for variable in hub.OFFLINE_SWITCHES:  # CI sets some of them
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert all("marked offline" in p for p in check_available(["sst2"]))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert all("did not answer" in p for p in check_available(["sst2"], timeout=2))


def test_check_available_with_the_real_folder(shared_data):
    from llmcourse.data import check_available

    assert check_available() == []


def test_numericalize_refuses_untokenized_strings():
    vocab = build_vocab_from_iterator([["the", "cat"]], specials=["<unk>"])
    vocab.set_default_index(vocab["<unk>"])
    assert numericalize([["the", "cat"]], vocab).tolist() == [vocab["the"], vocab["cat"]]
    for bad in (["the cat"], "the cat"):
        with pytest.raises(TypeError, match="Tokenize first"):
            numericalize(bad, vocab)


def test_one_changed_byte_or_bad_utf8_in_an_official_file_is_named(shared_data, tmp_path, monkeypatch):
    folder = _copy_wikitext(shared_data, tmp_path, splits=("valid", "test"))
    monkeypatch.setenv("LLMCOURSE_DATA", str(tmp_path / "offline"))
    valid, test = folder / "wiki.valid.tokens", folder / "wiki.test.tokens"
    valid.write_bytes(valid.read_bytes().replace(b" the ", b" thE ", 1))  # same lines, same words
    with pytest.raises(DataError, match=r"wiki\.valid\.tokens has been changed: its sha256 is"):
        WikiText2("valid")
    data = test.read_bytes()
    third_line = [i for i, b in enumerate(data) if b == 10][1] + 2
    test.write_bytes(data[:third_line] + b"\xff" + data[third_line + 1:])
    with pytest.raises(DataError, match=r"wiki\.test\.tokens is not valid UTF-8 \(line 3,"):
        WikiText2("test")


def test_streams_and_windows_refuse_what_would_go_wrong_silently():
    stream = torch.arange(100)
    with pytest.raises(TypeError, match="read character by character"):
        tokenize_lines("the cat sat")
    with pytest.raises(TypeError, match="expects a tensor of token ids, got list"):
        batchify(list(range(100)), 4)
    with pytest.raises(TypeError, match=r"batchify takes integer token ids \(torch.long\); got dtype torch.float32"):
        batchify(stream.float(), 4)
    for bad in (0, -2):
        with pytest.raises(ValueError, match=f"batch_size={bad}: give a whole number >= 1"):
            batchify(stream, bad)
    with pytest.raises(TypeError, match=r"batch_size=2.5: give a whole number"):
        batchify(stream, 2.5)
    with pytest.raises(ValueError, match="bptt=0: give a whole number >= 1"):
        BPTTIterator(batchify(stream, 4), 0)
    with pytest.raises(ValueError, match="bptt=0"):
        get_batch(batchify(stream, 4), 0, 0)
    with pytest.raises(ValueError, match="seq_len=0"):
        LMWindowDataset(stream, 0)
    with pytest.raises(ValueError, match="stride=-1"):
        LMWindowDataset(stream, 8, stride=-1)
    with pytest.raises(TypeError, match="integer token ids"):
        LMWindowDataset(stream.float(), 8)


@pytest.mark.parametrize("n, seq_len, stride", [(10, 4, None), (11, 4, None), (9, 4, None), (2, 4, None),
                                                (17, 4, 2), (100, 7, None)])
def test_pad_last_scores_every_token_after_the_first_once(n, seq_len, stride):
    windows = LMWindowDataset(torch.arange(n), seq_len, stride, pad_last=True, pad_id=0)
    targets = torch.cat([windows[k][1] for k in range(len(windows))])
    scored = targets[targets != -100].tolist()
    assert sorted(set(scored)) == list(range(1, n))
    if stride is None:
        assert scored == list(range(1, n))  # once each, in order
    for k in range(len(windows)):  # inputs and targets line up: y is x shifted, where y is not padding
        x, y = windows[k]
        assert x.shape == y.shape == (seq_len,)
        keep = y != -100
        assert torch.equal(y[keep][:-1], x[keep][1:])


def test_each_data_set_says_its_source_and_licence_once(shared_data, monkeypatch, capsys):
    monkeypatch.setattr(data, "_SAID", set())
    data.WikiText2("valid")
    data.WikiText2(("valid", "test"))
    data.SST2("dev")
    said = capsys.readouterr().out.splitlines()
    assert said == [data.DATASETS["wikitext-2"].source, data.DATASETS["sst2"].source]
    assert "CC BY-SA 3.0" in said[0] and "no licence is stated" in said[1]
