"""Data sets by name, verified, and the batching every language-model notebook uses.

Where a data set comes from, in this order:

1. the folder named by ``$LLMCOURSE_DATA`` (official file names, e.g. ``wikitext-2/wiki.train.tokens``
   and ``sst2/SST-2/train.tsv``): offline machines and CI;
2. the course's download cache (:func:`llmcourse.config.cache_dir`, the checkout's ``data/``);
3. a download from the living public mirror (Hugging Face datasets ``Salesforce/wikitext`` and
   ``nyu-mll/glue``) by ``huggingface_hub.hf_hub_download`` at a pinned revision, from ``$HF_ENDPOINT``
   where a room has a mirror (:mod:`llmcourse.hub`: the address and the offline switches), checked by sha256 where the hash is published and by row counts otherwise, converted to
   the official text layout and renamed into the cache only once it has passed.

Every file is checked each time it is loaded (valid UTF-8; its sha256 where known; lines and words,
or rows), so a truncated, changed or corrupted copy is an error that names the file, never a
silently different data set.

Data flows one way: text file → :func:`tokenize_lines` → :func:`~llmcourse.text.build_vocab_from_iterator`
→ :func:`numericalize` → :func:`batchify` / :class:`BPTTIterator` / :class:`LMWindowDataset` → model.
Taught in notebook 00 (data and vocabulary) and notebook 02 (batching for truncated BPTT).
"""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import hub
from .checks import listed, whole
from .config import cache_dir, data_dir
from .files import atomic_write
from .text import Vocab, build_vocab_from_iterator, check_token_ids

__all__ = [
    "DataError",
    "DATASETS",
    "dataset_path",
    "check_available",
    "missing_by_name",
    "export_folder",
    "import_folder",
    "WikiText2",
    "SST2",
    "tokenize_lines",
    "wikitext2_vocab",
    "numericalize",
    "batchify",
    "get_batch",
    "BPTTIterator",
    "LMWindowDataset",
]

DOWNLOAD_TIMEOUT = 60  # seconds the mirror may take to answer before a download gives up


class DataError(RuntimeError):
    """A data file is missing, incomplete or corrupted; the message says which and what to do."""


@dataclass(frozen=True)
class Split:
    """One file of a data set: where it lives locally, what it must contain, and where to get it."""

    filename: str  # official name, relative to the data set's folder
    remote: str  # path of the Parquet file in the mirror's dataset repository
    rows: int  # lines (WikiText-2) or data rows without the header (SST-2)
    words: int | None = None  # white-space tokens (WikiText-2)
    sha256: str | None = None  # of the remote Parquet file, where published
    text_sha256: str | None = None  # of the official text file, where a local copy must equal it byte for byte
    lines_sha256: str | None = None  # of the file's lines sorted and joined by "\n": the same in any line order
    labels: tuple[int, int] | None = None  # SST-2: rows labelled 0 (negative) and 1 (positive)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # relative to $LLMCOURSE_DATA or the cache
    repo: str  # Hugging Face dataset repository of the mirror
    revision: str  # a commit of that repository: the files never change under the course
    splits: dict[str, Split]
    header: dict[str, str] | None = None  # split -> expected first line (TSV files)
    notebooks: tuple[str, ...] = ()  # the notebooks that load it (notebook 03 needs no data set)
    source: str = ""  # who made it and under which licence: said once, the first time a notebook loads it


# Figures from ../shared/data/README.md: the published sizes of each split.
DATASETS: dict[str, DatasetSpec] = {
    "wikitext-2": DatasetSpec(
        name="wikitext-2",
        folder="wikitext-2",
        repo="Salesforce/wikitext",
        revision="b08601e04326c79dfdd32d625aee71d232d685c3",
        splits={
            "train": Split("wiki.train.tokens", "wikitext-2-v1/train-00000-of-00001.parquet", 36_718, 2_051_910,
                           "dfc27e4360c639dc1fba1e403bfffd53af4a5c75d5363b5724d49bf12d07cce6",
                           lines_sha256="dc66efa33496c5bd9f29e90c9f20854b5e18f6508115ffe281cfce3bc9563224"),
            "valid": Split("wiki.valid.tokens", "wikitext-2-v1/validation-00000-of-00001.parquet", 3_760, 213_886,
                           "717de9a0c1c0b0b1dfdd8f1e6ad8a30ece618bbde81f5da8207277547d324215",
                           "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
                           "17ac99a78346f6184acd385c8c272d2a0102eef7c2de7e1bb00e3c33b08d5123"),
            "test": Split("wiki.test.tokens", "wikitext-2-v1/test-00000-of-00001.parquet", 4_358, 241_211,
                          "e6b3913da714b63a60a571698b20ff15441fb015783ea1b5285f707d4f2f00a9",
                          "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
                          "46aec58173dad82c0d64ae1d013fce8c1c834854376828966d26b73f6130ea28"),
        },
        notebooks=("00", "01", "02", "04", "05", "06", "07"),
        source="WikiText-2 (Merity et al. 2016, from Wikipedia's Good and Featured articles): licence CC BY-SA 3.0",
    ),
    "sst2": DatasetSpec(
        name="sst2",
        folder="sst2/SST-2",
        repo="nyu-mll/glue",
        revision="bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c",
        splits={
            "train": Split("train.tsv", "sst2/train-00000-of-00001.parquet", 67_349,
                           lines_sha256="eb4d98facf1ccb1000505dbccd24106876ab8e60315861d050b2b48f4d1821e7",
                           labels=(29_780, 37_569)),
            "dev": Split("dev.tsv", "sst2/validation-00000-of-00001.parquet", 872,
                         lines_sha256="dea5a68a7c5ed9c7a606210caddb48579c55b683d3c7940f5aa2bc028d72c6fb",
                         labels=(428, 444)),
            "test": Split("test.tsv", "sst2/test-00000-of-00001.parquet", 1_821,
                          lines_sha256="46a3a0d5721ec143c14ad2e308b177cdd950e5fdd3faa620f0b5e6e6ca36c505"),
        },
        header={"train": "sentence\tlabel", "dev": "sentence\tlabel", "test": "index\tsentence"},
        notebooks=("05", "07"),
        source="SST-2 (Socher et al. 2013, in GLUE: Wang et al. 2018): no licence is stated; use it to study, "
               "do not republish it",
    ),
}


def _spec(name: str, split: str) -> tuple[DatasetSpec, Split]:
    if name not in DATASETS:
        raise KeyError(f"Unknown data set {name!r}; the course knows {sorted(DATASETS)}.")
    spec = DATASETS[name]
    if split not in spec.splits:
        raise KeyError(f"{name} has no split {split!r}; its splits are {list(spec.splits)}.")
    return spec, spec.splits[split]


# --------------------------------------------------------------------------------------------
# Finding, downloading and checking files
# --------------------------------------------------------------------------------------------
def dataset_path(name: str, split: str, download: bool = True) -> Path:
    """The local path of one split of a data set, downloading it into the cache if need be.

    The file returned has passed :func:`_check_file`.
    """
    spec, entry = _spec(name, split)
    folder = data_dir()
    if folder is not None:
        path = folder / spec.folder / entry.filename
        if not path.is_file():
            present = sorted(p.name for p in (folder / spec.folder).glob("*")) if (folder / spec.folder).is_dir() else []
            raise DataError(
                f"LLMCOURSE_DATA={folder} has no {spec.folder}/{entry.filename} (the {split} split of {name}); "
                f"found {present or 'no such folder'}. Copy the official files there under their official names "
                f"({', '.join(s.filename for s in spec.splits.values())}), or unset LLMCOURSE_DATA to download "
                "them into the course's cache."
            )
        _check_file(path, spec, split, origin="LLMCOURSE_DATA")
        return path

    path = cache_dir() / spec.folder / entry.filename
    if not path.is_file():
        if not download:
            raise DataError(f"{path} is not in the cache and download=False.")
        _download_split(spec, split, path)
    _check_file(path, spec, split, origin="cache")
    return path


def missing_by_name(names: Sequence[str] = tuple(DATASETS), timeout: float = 5.0) -> dict[str, list[str]]:
    """What stops each of the course's data sets from being had, in seconds: ``{name: problems}`` for the
    data sets that cannot be had (the others are left out), asking the Hub at most once.

    Each split must be in ``$LLMCOURSE_DATA`` (when set), or in the cache, or downloadable: the Hub
    (:func:`llmcourse.hub.endpoint`) must answer and the machine must not be marked offline. Files present locally
    are not read here (loading checks them); ``course.py test`` and ``lab`` call this first, so that a
    machine without the data stops (or, for ``lab``, says which notebooks lack what) at once.
    """
    missing, folder = {}, data_dir()
    for name in names:
        spec = DATASETS[name]
        for split, entry in spec.splits.items():
            if folder is not None:
                if not (folder / spec.folder / entry.filename).is_file():
                    missing.setdefault(name, []).append(
                        f"LLMCOURSE_DATA={folder} has no {spec.folder}/{entry.filename} ({name} {split})")
            elif not (cache_dir() / spec.folder / entry.filename).is_file():
                missing.setdefault(name, []).append(f"{name} {split} (not in the cache {cache_dir() / spec.folder})")
    if not missing or folder is not None:
        return missing
    why = hub.unreachable(timeout)
    if why is None:
        return {}  # the missing files can be downloaded
    return {name: [f"{m}, and it cannot be downloaded: {why}" for m in found] for name, found in missing.items()}


def export_folder(dest: str | os.PathLike) -> dict[str, str]:
    """Every split of the course's data sets, checked (from ``$LLMCOURSE_DATA``, the cache or a download), copied
    into ``dest`` in the official layout that ``LLMCOURSE_DATA`` reads: a workshop's kit (``course.py stage``).
    Returns ``{path relative to dest: sha256}``; each file appears whole or not at all."""
    dest, written = Path(dest), {}
    for spec in DATASETS.values():
        for split, entry in spec.splits.items():
            data = dataset_path(spec.name, split).read_bytes()
            relative = f"{spec.folder}/{entry.filename}"
            atomic_write(dest / relative, lambda tmp: tmp.write_bytes(data))
            written[relative] = hashlib.sha256(data).hexdigest()
    return written


def import_folder(src: str | os.PathLike, sha256: dict[str, str] | None = None) -> list[Path]:
    """The other end of :func:`export_folder`, on a learner's machine: every split in ``src`` (the official
    layout) is checked as a file of ``$LLMCOURSE_DATA`` is, and against ``sha256`` (``{relative path: hash}``, the
    kit's list) where given, all of them *before* anything is copied; then each is copied into the cache
    (:func:`llmcourse.config.cache_dir`) with its hash noted, as a download is. Returns the cached paths."""
    src, checked = Path(src), []
    for spec in DATASETS.values():
        for split, entry in spec.splits.items():
            relative = f"{spec.folder}/{entry.filename}"
            path = src / relative
            if not path.is_file():
                raise DataError(f"{src} has no {relative} (the {split} split of {spec.name}): the kit is incomplete. "
                                "Copy the whole folder again, or stage it anew (python3 course.py stage DIR).")
            listed = (sha256 or {}).get(relative)  # the kit's hash, taken when it was staged from checked files
            _check_file(path, spec, split, origin="kit" if listed else "LLMCOURSE_DATA")
            digest = _sha256(path)
            if listed is not None and listed != digest:
                raise DataError(f"{path} has been changed since it was staged: its sha256 is {digest}, the kit's "
                                f"list says {sha256[relative]}. Copy the folder again from the original.")
            checked.append((path, cache_dir() / relative, digest))
    for path, dest, digest in checked:
        data = path.read_bytes()
        atomic_write(_hash_note(dest), lambda tmp: tmp.write_text(digest + "\n"))
        atomic_write(dest, lambda tmp: tmp.write_bytes(data))
    return [dest for _, dest, _ in checked]


def check_available(names: Sequence[str] = tuple(DATASETS), timeout: float = 5.0) -> list[str]:
    """Every problem of :func:`missing_by_name`, in one list; an empty list when nothing stops the data."""
    return [p for found in missing_by_name(names, timeout).values() for p in found]


AVAILABILITY_HELP = (
    "The course needs WikiText-2 and SST-2. Either let it download them (on a machine that can reach "
    "huggingface.co, with HF_HUB_OFFLINE unset), or put the official files in a folder and point "
    "LLMCOURSE_DATA at it: see the README, section 'Data'."
)


def _hash_note(path: Path) -> Path:
    """Where the cache keeps the sha256 of a file it wrote, to check the file on every later load."""
    return path.with_name(f".{path.name}.sha256")


def _check_file(path: Path, spec: DatasetSpec, split: str, origin: str) -> None:
    """Check a local file: valid UTF-8; its size in lines and words (WikiText-2) or rows, header and labels
    (SST-2); and its content, by sha256.

    Every split the course knows has a known content: ``lines_sha256``, the sha256 of its lines sorted
    (the same for the official file and for a copy whose articles are in another order, as CI's
    WikiText-2 train file), and for WikiText-2's valid and test files the official file's own sha256.
    A file in ``$LLMCOURSE_DATA`` must match them. In the cache, a file must match the hash noted beside
    it when the course wrote it; one copied in by hand without its note must match the known content,
    and then gets its note. A fresh download is checked by its Parquet file's sha256 (WikiText-2) and by
    its counts and labels (SST-2, whose Parquet hashes are not published) before it enters the cache.
    """
    entry = spec.splits[split]
    data = path.read_bytes()
    fix = ("delete it and run again to download a fresh copy" if origin == "cache"
           else "replace it with the official file (see the course README, 'Data')")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path} is not valid UTF-8 (line {line:,}, byte {exc.start:,}: {exc.reason}): the file is "
                        f"damaged or in another encoding. To fix it, {fix}.") from None
    lines = _lines(text)
    problems = _size_problems(text, lines, spec, split)
    if problems:
        raise DataError(f"{path} is incomplete or corrupted: it has {' and '.join(problems)}. "
                        f"To fix it, {fix}.")
    digest = hashlib.sha256(data).hexdigest()
    note = _hash_note(path)
    if origin == "cache" and note.is_file():  # the hash noted when the course wrote it
        expected = note.read_text().strip()
        if digest != expected:
            raise DataError(f"{path} has been changed: its sha256 is {digest}, expected {expected} (noted when the "
                            f"course wrote it). To fix it, {fix}.")
        return
    if origin in ("download", "kit"):  # checked by the Parquet file's hash, or the kit's list, by the caller
        return
    if origin == "LLMCOURSE_DATA" and entry.text_sha256 is not None:  # the official file, byte for byte
        if digest != entry.text_sha256:
            raise DataError(f"{path} has been changed: its sha256 is {digest}, expected {entry.text_sha256}. "
                            f"To fix it, {fix}.")
        return
    sorted_digest = _lines_sha256(lines)
    if entry.lines_sha256 is not None and sorted_digest != entry.lines_sha256:
        where = ("was copied into the cache without the hash note the course writes beside what it downloads, and "
                 if origin == "cache" else "")
        raise DataError(f"{path} {where}is not the official {split} split of {spec.name}: the sha256 of its sorted "
                        f"lines is {sorted_digest}, expected {entry.lines_sha256} (a line was changed, added or "
                        f"removed). To fix it, {fix}.")
    if origin == "cache":  # a hand-copied official file: noted now, checked by its hash from here on
        atomic_write(note, lambda tmp: tmp.write_text(digest + "\n"))


def _size_problems(text: str, lines: list[str], spec: DatasetSpec, split: str) -> list[str]:
    """What is wrong with a file's size: lines and words, or rows, header and labels."""
    entry, problems = spec.splits[split], []
    if spec.header is not None:
        header = lines[0] if lines else ""
        if header != spec.header[split]:
            problems.append(f"header {header[:40]!r} (expected {spec.header[split]!r})")
        rows = len(lines) - 1
    else:
        rows = len(lines)
    if rows != entry.rows:
        problems.append(f"{rows:,} rows (expected {entry.rows:,})")
    if entry.words is not None:
        words = len(text.split())
        if words != entry.words:
            problems.append(f"{words:,} words (expected {entry.words:,})")
    if entry.labels is not None and not problems:
        labels = [line.rsplit("\t", 1)[-1] for line in lines[1:]]
        counts = (labels.count("0"), labels.count("1"))
        if counts != entry.labels:
            problems.append(f"{counts[0]:,} negative and {counts[1]:,} positive labels (expected "
                            f"{entry.labels[0]:,} and {entry.labels[1]:,})")
    return problems


def _lines_sha256(lines: list[str]) -> str:
    """The sha256 of the lines sorted and joined by newlines: a file's content whatever the order of its lines."""
    return hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()


def _fetch_parquet(spec: DatasetSpec, entry: Split, folder: Path) -> Path:
    """One Parquet file of the mirror, by ``huggingface_hub.hf_hub_download`` at the pinned revision,
    into ``folder`` (a temporary folder: only the converted, checked text enters the course's cache).

    ``huggingface_hub`` does the HTTP: retries, resumed and atomic writes, ``$HF_TOKEN``, ``$HF_ENDPOINT``.
    Offline (any of :data:`llmcourse.hub.OFFLINE_SWITCHES`) nothing is requested and the error says what to do.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    where = f"{spec.repo}/{entry.remote} (revision {spec.revision[:12]})"
    offline_help = ("put the data set's official files in a folder and point LLMCOURSE_DATA at it "
                    "(see the course README, 'Data')")
    if (switch := hub.offline_switch()):
        raise DataError(f"Cannot download {where}: this machine is marked offline ({switch}=1). Unset "
                        f"{switch} on a machine that can reach the Hub, or {offline_help}.")
    if (why := hub.unreachable(5.0)) is not None:  # seconds, where huggingface_hub would retry for half a minute
        raise DataError(f"Could not download {where}: {why}. If this machine is offline, {offline_help}.")
    try:
        path = hf_hub_download(spec.repo, entry.remote, repo_type="dataset", revision=spec.revision,
                               local_dir=folder, endpoint=hub.endpoint(), etag_timeout=DOWNLOAD_TIMEOUT)
    except LocalEntryNotFoundError as exc:  # the Hub could not be reached
        raise DataError(f"Could not download {where}: the Hub did not answer ({_first_line(exc)}). If this "
                        f"machine is offline, {offline_help}.") from None
    except (HfHubHTTPError, EntryNotFoundError) as exc:  # it answered: no such repository, revision or file
        raise DataError(f"Could not download {where}: {_first_line(exc)} The course's registry of data sets "
                        f"(llmcourse.data.DATASETS) may be out of date; {offline_help}.") from None
    except OSError as exc:
        raise DataError(f"Could not download {where} ({_first_line(exc)}). If this machine is offline, "
                        f"{offline_help}.") from None
    return Path(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download_split(spec: DatasetSpec, split: str, dest: Path) -> None:
    """Fetch the mirror's Parquet file, verify it, and write the official text layout to ``dest``."""
    import pyarrow.parquet as pq

    entry = spec.splits[split]
    print(f"Downloading the {split} split of {spec.name} from the Hugging Face dataset {spec.repo}")
    with tempfile.TemporaryDirectory(dir=_ensure(dest.parent)) as workdir:
        parquet = _fetch_parquet(spec, entry, Path(workdir))
        if entry.sha256 is not None and (digest := _sha256(parquet)) != entry.sha256:
            raise DataError(f"The download of {spec.repo}/{entry.remote} is corrupted: its sha256 is {digest}, "
                            f"expected {entry.sha256}. Nothing was cached; run again to retry.")
        try:
            table = pq.read_table(parquet)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"The download of {spec.repo}/{entry.remote} is not a readable Parquet file "
                            f"({exc}). Nothing was cached; run again to retry.") from exc

        staged = Path(workdir) / entry.filename  # the official name, for the check's message
        with open(staged, "w", encoding="utf-8", newline="") as out:
            if spec.name == "wikitext-2":
                for line in table.column("text").to_pylist():
                    out.write(line.rstrip("\n") + "\n")  # one row of the mirror is one line of the file
            else:
                writer = csv.writer(out, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\",
                                    lineterminator="\n")
                writer.writerow(spec.header[split].split("\t"))
                columns = table.to_pydict()
                if split == "test":
                    writer.writerows(zip(columns["idx"], columns["sentence"]))
                else:
                    writer.writerows(zip(columns["sentence"], columns["label"]))
        # Check the converted file *before* it enters the cache: rows are SST-2's only checksum.
        _check_file(staged, spec, split, origin="download")
        digest = _sha256(staged)
        atomic_write(_hash_note(dest), lambda tmp: tmp.write_text(digest + "\n"))
        os.replace(staged, dest)


def _lines(text: str) -> list[str]:
    """Split on newlines only, as ``wc -l`` counts: WikiText-2 holds characters that
    ``str.splitlines`` would also treat as line breaks."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --------------------------------------------------------------------------------------------
# Data sets by name, with torchtext's names
# --------------------------------------------------------------------------------------------
_SAID: set[str] = set()


def _say_source(name: str) -> None:
    """Print where a data set comes from and its licence, once per process (the first load in a notebook)."""
    if name not in _SAID:
        _SAID.add(name)
        print(DATASETS[name].source)


def WikiText2(split: str | Sequence[str] = ("train", "valid", "test")) -> list[str] | tuple[list[str], ...]:
    """The lines of WikiText-2 (v1, tokenized, word level), as ``torchtext.datasets.WikiText2``.

    Each line is a string of space-separated words, ``<unk>`` included; blank lines are kept, since
    each line ends with one ``<eos>`` in the course's convention. One split name gives one list.
    """
    if isinstance(split, str):
        path = dataset_path("wikitext-2", split)
        _say_source("wikitext-2")
        with open(path, encoding="utf-8", newline="") as f:
            return _lines(f.read())
    return tuple(WikiText2(s) for s in split)


def SST2(split: str | Sequence[str] = ("train", "dev", "test")) -> list[tuple[str, int]] | tuple:
    """SST-2 sentences and labels (1 positive, 0 negative) as ``(sentence, label)`` pairs.

    The test split's labels are withheld by GLUE: they come back as -1.
    """
    if not isinstance(split, str):
        return tuple(SST2(s) for s in split)
    path = dataset_path("sst2", split)
    _say_source("sst2")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        if split == "test":
            return [(sentence, -1) for _index, sentence in reader]
        return [(sentence, int(label)) for sentence, label in reader]


# --------------------------------------------------------------------------------------------
# text -> tokens -> vocabulary -> ids
# --------------------------------------------------------------------------------------------
def tokenize_lines(lines: Sequence[str], tokenizer=str.split, eos: str | None = "<eos>") -> list[list[str]]:
    """Tokenize each line and end it with ``eos``: the course's convention of one ``<eos>`` per line.

    WikiText-2 is already tokenized, so the default tokenizer just splits on white space.
    """
    if isinstance(lines, str):
        raise TypeError("tokenize_lines takes a list of lines, not one string: a string would be read character "
                        "by character. Pass text.split('\\n'), or [line] for a single line.")
    if eos is None:
        return [tokenizer(line) for line in lines]
    return [tokenizer(line) + [eos] for line in lines]


def wikitext2_vocab(min_freq: int = 1) -> Vocab:
    """The WikiText-2 vocabulary the usual way: train split, one ``<eos>`` per line, ``<unk>`` and
    ``<eos>`` first, unknown words mapped to ``<unk>``. 33,278 types (valid and test add none)."""
    vocab = build_vocab_from_iterator(tokenize_lines(WikiText2("train")), min_freq=min_freq,
                                      specials=["<unk>", "<eos>"])
    vocab.set_default_index(vocab["<unk>"])
    return vocab


def numericalize(token_lists: Sequence[Sequence[str]], vocab: Vocab) -> Tensor:
    """Concatenate token lists into one stream of ids: a ``LongTensor`` of shape ``(n_tokens,)``. Any iterable
    of token lists is read once (a generator or ``map(str.split, lines)`` too)."""
    if not isinstance(token_lists, str):
        token_lists = listed("numericalize's token_lists", token_lists)
    if isinstance(token_lists, str) or any(isinstance(tokens, str) for tokens in token_lists):
        raise TypeError("numericalize takes token lists (one list of str per line), not strings: a string "
                        "would be looked up character by character. Tokenize first, e.g. "
                        "numericalize(tokenize_lines(lines), vocab).")
    ids = [vocab[t] for tokens in token_lists for t in tokens]
    return torch.tensor(ids, dtype=torch.long)


# --------------------------------------------------------------------------------------------
# Batching for language models (batch first, as everywhere in the course)
# --------------------------------------------------------------------------------------------
def _check_stream(ids: Any, who: str) -> None:
    """A stream of token ids: a 1-D integer tensor (what :func:`numericalize` returns)."""
    if not isinstance(ids, Tensor):
        raise TypeError(f"{who} expects a tensor of token ids, got {type(ids).__name__}; build it with "
                        "numericalize(token_lists, vocab) or torch.tensor(ids, dtype=torch.long).")
    if ids.dim() != 1:
        raise ValueError(f"{who} expects a 1-D stream of ids, got shape {tuple(ids.shape)}.")
    check_token_ids(ids, None, who)  # integers, none negative (the vocabulary's size is not known here)


def _check_positive(who: str, **values: Any) -> None:
    for name, value in values.items():
        whole(f"{who}: {name}", value)


def batchify(data: Tensor, batch_size: int) -> Tensor:
    """Cut a stream of ids into ``batch_size`` contiguous rows: ``(n,)`` → ``(batch_size, n // batch_size)``.

    As in PyTorch's word-language-model example, but batch first: row ``b`` continues in the next
    window where it stopped in this one, which is what lets an RNN carry its hidden state across.
    The last ``n % batch_size`` tokens are dropped.
    """
    _check_stream(data, "batchify")
    whole("batchify: batch_size", batch_size)
    n = data.numel() // batch_size
    if n < 2:
        raise ValueError(f"{data.numel()} tokens are too few for batch_size={batch_size}.")
    return data[: n * batch_size].view(batch_size, n).contiguous()


def get_batch(source: Tensor, i: int, bptt: int) -> tuple[Tensor, Tensor]:
    """The window starting at time ``i`` of a batchified stream and its targets, shifted by one.

    ``source``: ``(batch, time)``; returns ``x, y`` of shape ``(batch, seq)`` with
    ``seq = min(bptt, time - 1 - i)`` and ``y[:, t] == source[:, i + t + 1]``.
    """
    _check_positive("get_batch", bptt=bptt)
    seq = min(bptt, source.size(1) - 1 - i)
    if seq < 1:
        raise IndexError(f"No window starts at {i}: the stream has {source.size(1)} steps.")
    return source[:, i : i + seq], source[:, i + 1 : i + 1 + seq]


class BPTTIterator:
    """The windows of a batchified stream, in order: ``for x, y in BPTTIterator(source, bptt)``.

    Consecutive windows continue each other row by row, for truncated backpropagation through time.
    """

    def __init__(self, source: Tensor, bptt: int):
        if source.dim() != 2:
            raise ValueError(f"BPTTIterator expects a batchified (batch, time) tensor, got {tuple(source.shape)}; "
                             "call batchify(stream, batch_size) first.")
        _check_positive("BPTTIterator", bptt=bptt)
        self.source, self.bptt = source, bptt

    def __len__(self) -> int:
        return -(-(self.source.size(1) - 1) // self.bptt)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(0, self.source.size(1) - 1, self.bptt):
            yield get_batch(self.source, i, self.bptt)


class LMWindowDataset(Dataset):
    """Fixed-length windows of a stream of ids for a ``DataLoader``: item ``k`` is ``(x, y)`` with
    ``x = ids[k*stride : k*stride + seq_len]`` and ``y`` the same window shifted by one token.

    With the default ``stride = seq_len`` every token is predicted exactly once per epoch, except the
    last ``< seq_len`` tokens, which fill no whole window. ``pad_last=True`` adds one last window for
    them, its missing positions padded (inputs with ``pad_id``, targets with -100, which the losses
    skip): then every token after the first is scored, which a per-word perplexity needs (notebook 06).
    """

    def __init__(self, ids: Tensor, seq_len: int, stride: int | None = None, *, pad_last: bool = False,
                 pad_id: int = 0):
        _check_stream(ids, "LMWindowDataset")
        _check_positive("LMWindowDataset", seq_len=seq_len, **({} if stride is None else {"stride": stride}))
        if ids.numel() < (2 if pad_last else seq_len + 1):
            raise ValueError(f"{ids.numel()} tokens are too few for windows of {seq_len} (+1 target).")
        self.ids, self.seq_len, self.stride = ids, seq_len, stride or seq_len
        self.pad_last, self.pad_id = pad_last, pad_id
        self._full = max(0, (ids.numel() - 1 - seq_len) // self.stride + 1)
        last_target = (self._full - 1) * self.stride + seq_len  # index of the last token the full windows score
        self._extra = int(pad_last and (self._full == 0 or last_target < ids.numel() - 1))

    def __len__(self) -> int:
        return self._full + self._extra

    def __getitem__(self, k: int) -> tuple[Tensor, Tensor]:
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        k %= len(self)
        if k < self._full:
            start = k * self.stride
            window = self.ids[start : start + self.seq_len + 1]
            return window[:-1], window[1:]
        start = self._full * self.stride if self.stride == self.seq_len else (self._full - 1) * self.stride + self.seq_len
        x, y = self.ids[start:-1], self.ids[start + 1:]
        pad = self.seq_len - x.numel()
        return (torch.cat([x, x.new_full((pad,), self.pad_id)]), torch.cat([y, y.new_full((pad,), -100)]))
