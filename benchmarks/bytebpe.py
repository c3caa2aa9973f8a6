"""Benchmark of llmcourse.bytebpe (GPT-2's byte-level BPE) on WikiText-2 against Hugging Face tokenizers:
training time to 4,096 tokens, whether merges, ids and encodings are identical, encoding throughput,
bytes per token and tokens per word on valid, and the peak memory of streaming the training file.

    LLMCOURSE_DATA=/work/shared/data .venv/bin/python benchmarks/bytebpe.py [--quick]

The text is each split's lines joined with "\\n"; ``<|endoftext|>`` and WikiText-2's ``<unk>`` are special
tokens. tokenizers runs on one thread by default (``--threads``; it reads ``RAYON_NUM_THREADS``), as ours
is single-threaded Python, so the figures compare the algorithms rather than the number of cores. Its
trainer would count the characters of ``<unk>``, so it is fed the text between the special tokens
(:func:`llmcourse.bytebpe.tokenizers_byte_bpe`); that cut, in Python, is timed apart and included in
its training time. Targets: ours within 3x of tokenizers in training and in encoding. Prints the
figures and saves them to ``benchmarks/results/bytebpe.json`` (``bytebpe_quick.json`` with ``--quick``,
a smoke test of a few seconds on the first lines).
"""

from __future__ import annotations

import os
import sys
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmcourse.bytebpe import (ByteBPETokenizer, SpecialSplitter, tokenizers_byte_bpe, tokenizers_merges,  # noqa: E402
                               train_byte_bpe)
from llmcourse.data import WikiText2, dataset_path  # noqa: E402

from _common import save, stamp, timed, tokenizer_args  # noqa: E402  (benchmarks/_common.py)

SPECIALS = ("<|endoftext|>", "<unk>")
FULL = {"vocab_size": 4096, "train_lines": None, "valid_lines": None, "encode_train": True, "stream_lines": None}
QUICK = {"vocab_size": 512, "train_lines": 2000, "valid_lines": 300, "encode_train": False, "stream_lines": 2000}
TARGET = 3.0  # ours at most this many times slower than tokenizers


def encode_figures(ours: ByteBPETokenizer, theirs, text: str, name: str) -> dict:
    """Seconds to encode ``text`` with ours (a fresh copy: cold cache, then warm) and with tokenizers."""
    fresh = ByteBPETokenizer(ours.merges, ours.special_tokens)
    ids, cold = timed(lambda: fresh.encode(text))
    _, warm = timed(lambda: fresh.encode(text))
    encoding, hf = timed(lambda: theirs.encode(text))
    mb = len(text.encode("utf-8")) / 1e6
    return {"split": name, "megabytes": round(mb, 2), "words": len(text.split()), "tokens": len(ids),
            "ours_cold_seconds": round(cold, 3), "ours_warm_seconds": round(warm, 3),
            "tokenizers_seconds": round(hf, 3), "ours_cold_mb_per_second": round(mb / cold, 2),
            "tokenizers_mb_per_second": round(mb / hf, 2), "ratio_cold": round(cold / hf, 2),
            "cached_pieces": len(fresh._cache), "ids_identical": ids == encoding.ids}


def stream_figures(ours: ByteBPETokenizer, path: Path, n_lines: int | None) -> dict:
    """Peak traced memory (tracemalloc) of ``encode_iterable`` over the file read line by line, with a
    fresh tokenizer, so that its cache's growth counts; and whether the ids equal encoding it whole."""
    def lines():
        with open(path, encoding="utf-8", newline="") as f:
            for k, line in enumerate(f):
                if n_lines is not None and k >= n_lines:
                    return
                yield line

    whole = "".join(lines())
    identical = list(ByteBPETokenizer(ours.merges, ours.special_tokens).encode_iterable(lines())) == ours.encode(whole)
    del whole
    fresh = ByteBPETokenizer(ours.merges, ours.special_tokens)
    peaks = []
    for _ in ("cold cache", "warm cache"):  # the second pass finds the cache full: the streaming alone
        tracemalloc.start()
        try:
            count, seconds = timed(lambda: sum(1 for _ in fresh.encode_iterable(lines())))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    size = sum(len(line.encode("utf-8")) for line in lines())
    return {"file": path.name, "lines": n_lines or "all", "file_megabytes": round(size / 2**20, 2), "tokens": count,
            "peak_megabytes_cold_cache": round(peaks[0] / 2**20, 2),
            "peak_over_file_cold_cache": round(peaks[0] / size, 4),
            "peak_megabytes_warm_cache": round(peaks[1] / 2**20, 3),
            "peak_over_file_warm_cache": round(peaks[1] / size, 5),
            "cached_pieces": len(fresh._cache), "cache_size": fresh.cache_size, "seconds_traced": round(seconds, 2),
            "ids_equal_encode_of_whole_file": identical}


def main(argv: list[str] | None = None) -> dict:
    args, out = tokenizer_args(argv, __doc__.splitlines()[0], "vocabulary 512 on the first 2,000 lines: a smoke test",
                               "bytebpe")
    plan = QUICK if args.quick else FULL

    load_average = [round(x, 2) for x in os.getloadavg()]  # other work on the machine slows both sides
    (train, valid), load_s = timed(lambda: WikiText2(("train", "valid")))
    train, valid = train[:plan["train_lines"]], valid[:plan["valid_lines"]]
    train_text, valid_text = "\n".join(train), "\n".join(valid)
    print(f"WikiText-2: train {len(train_text.encode()) / 1e6:.2f} MB ({len(train):,} lines), valid "
          f"{len(valid_text.encode()) / 1e6:.2f} MB; special tokens {list(SPECIALS)}", flush=True)

    import tokenizers  # noqa: F401  (imported before the clock starts)

    vocab_size = plan["vocab_size"]
    ours, ours_s = timed(lambda: train_byte_bpe([train_text], vocab_size, special_tokens=SPECIALS))
    theirs, hf_s = timed(lambda: tokenizers_byte_bpe([train_text], vocab_size, special_tokens=SPECIALS))
    _, cut_s = timed(lambda: sum(1 for part, special in SpecialSplitter(SPECIALS)(train_text) if not special))
    identical = ours.merges == tokenizers_merges(theirs) and ours.vocab == theirs.get_vocab()
    print(f"training to {vocab_size:,} tokens ({len(ours.merges):,} merges): ours {ours_s:.2f} s, tokenizers "
          f"{hf_s:.2f} s on {args.threads or 'its default number of'} thread(s) (of which {cut_s:.2f} s cutting out "
          f"special tokens in Python); ours / tokenizers = {ours_s / hf_s:.2f} (target <= {TARGET:g}); merges and ids "
          f"identical: {identical}", flush=True)

    encoding = [encode_figures(ours, theirs, valid_text, "valid")]
    if plan["encode_train"]:
        encoding.append(encode_figures(ours, theirs, train_text, "train"))
    for e in encoding:
        print(f"encode {e['split']} ({e['megabytes']} MB): ours {e['ours_cold_seconds']} s cold, "
              f"{e['ours_warm_seconds']} s warm; tokenizers {e['tokenizers_seconds']} s; ours / tokenizers = "
              f"{e['ratio_cold']} cold (target <= {TARGET:g}); ids identical: {e['ids_identical']}", flush=True)

    valid_ids = encoding[0]["tokens"]
    bytes_per_token = len(valid_text.encode("utf-8")) / valid_ids
    tokens_per_word = valid_ids / len(valid_text.split())
    print(f"valid: {bytes_per_token:.3f} bytes per token, {tokens_per_word:.3f} tokens per word (white-space "
          "words, <unk> one word)", flush=True)

    stream = stream_figures(ours, dataset_path("wikitext-2", "train"), plan["stream_lines"])
    print(f"encode_iterable over {stream['file']} line by line ({stream['file_megabytes']} MiB): peak traced memory "
          f"{stream['peak_megabytes_cold_cache']} MiB from a cold cache ({stream['peak_over_file_cold_cache']:.1%} of "
          "the "
          f"file; the cache grows to {stream['cached_pieces']:,} pieces, at most {stream['cache_size']:,}), "
          f"{stream['peak_megabytes_warm_cache']} MiB with the cache full ({stream['peak_over_file_warm_cache']:.2%}); "
          f"ids equal to encoding it whole: {stream['ids_equal_encode_of_whole_file']}", flush=True)

    result = stamp("bytebpe", kind="quick" if args.quick else "full",
                   note=(f"CPU; tokenizers on {args.threads or 'its default number of'} thread(s) (RAYON_NUM_THREADS); "
                         "ours is single-threaded Python. Both times include pre-tokenizing and counting; "
                         "tokenizers' includes cutting out the special tokens in Python (cut_specials_seconds)."),
                   tokenizers_threads=args.threads or None, load_average_1_5_15_min=load_average,
                   load_seconds=round(load_s, 2),
                   train_megabytes=round(len(train_text.encode()) / 1e6, 2), special_tokens=list(SPECIALS),
                   vocab_size=vocab_size, merges=len(ours.merges),
                   ours_train_seconds=round(ours_s, 2), tokenizers_train_seconds=round(hf_s, 2),
                   cut_specials_seconds=round(cut_s, 2), train_ratio=round(ours_s / hf_s, 2),
                   target_ratio=TARGET, train_target_met=ours_s / hf_s <= TARGET,
                   encode_target_met=all(e["ratio_cold"] <= TARGET for e in encoding),
                   merges_and_ids_identical=identical, encoding=encoding,
                   valid_bytes_per_token=round(bytes_per_token, 4), valid_tokens_per_word=round(tokens_per_word, 4),
                   stream=stream)
    save(result, out, echo=False)
    return result


if __name__ == "__main__":
    main()
