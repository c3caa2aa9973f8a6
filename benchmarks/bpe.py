"""Benchmark of llmcourse.bpe on WikiText-2 against Hugging Face tokenizers' BpeTrainer: training time,
encoding throughput (words per second), whether merges, ids and encodings are identical, and tokens per
word for vocabulary sizes from 500 to 16,000.

    LLMCOURSE_DATA=/work/shared/data .venv/bin/python benchmarks/bpe.py [--quick]

Both sides run on one thread by default (``--threads``; tokenizers reads ``RAYON_NUM_THREADS``), so the
figures compare the algorithms rather than the number of cores. The plain learner's loop
(``learn_merges``) is timed on a few merges only: its seconds per merge, times the merges, is an
estimate, marked as one. Prints the figures and saves them to ``benchmarks/results/bpe.json``
(``bpe_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmcourse.bpe import (WORD_START, BPETokenizer, count_words, learn_merges, tokenizers_bpe,  # noqa: E402
                           tokenizers_merges, train_bpe)
from llmcourse.data import WikiText2  # noqa: E402

from _common import save, stamp, timed, tokenizer_args  # noqa: E402  (benchmarks/_common.py)

FULL = {"vocab_size": 16000, "plain_merges": 10, "tradeoff": (500, 1000, 2000, 4000, 8000, 16000), "train_encode": True}
QUICK = {"vocab_size": 2000, "plain_merges": 3, "tradeoff": (500, 1000, 2000), "train_encode": False}


def _words(lines: list[str]) -> int:
    return sum(len(line.split()) for line in lines)


def encode_figures(ours: BPETokenizer, theirs, lines: list[str], name: str) -> dict:
    """Words per second for ours (cold cache: a fresh copy; then warm) and tokenizers' encode_batch."""
    words = _words(lines)
    fresh = BPETokenizer(ours.merges, ours.alphabet, ours.special_tokens, ours.unk_token)
    ids, cold = timed(lambda: [fresh.encode(line) for line in lines])
    _, warm = timed(lambda: [fresh.encode(line) for line in lines])
    encodings, hf = timed(lambda: theirs.encode_batch(lines))
    return {"split": name, "lines": len(lines), "words": words, "tokens": sum(map(len, ids)),
            "ours_cold_seconds": round(cold, 3), "ours_cold_words_per_second": round(words / cold),
            "ours_warm_seconds": round(warm, 3), "ours_warm_words_per_second": round(words / warm),
            "tokenizers_seconds": round(hf, 3), "tokenizers_words_per_second": round(words / hf),
            "cached_words": len(fresh._cache),
            "ids_identical": ids == [e.ids for e in encodings]}


def main(argv: list[str] | None = None) -> dict:
    args, out = tokenizer_args(argv, __doc__.splitlines()[0], "vocabulary 2,000, valid only: a smoke test (seconds)",
                               "bpe")
    plan = QUICK if args.quick else FULL

    (train, valid), load_s = timed(lambda: WikiText2(("train", "valid")))
    counts, count_s = timed(lambda: count_words(train))
    print(f"WikiText-2: {_words(train):,} train words ({len(counts):,} distinct, counted in {count_s:.2f} s), "
          f"{_words(valid):,} valid words", flush=True)

    vocab_size = plan["vocab_size"]
    ours, ours_s = timed(lambda: train_bpe(counts, vocab_size=vocab_size, unk_token="<unk>"))
    theirs, hf_s = timed(lambda: tokenizers_bpe(train, vocab_size, unk_token="<unk>"))
    merges = len(ours.merges)
    identical = ours.merges == tokenizers_merges(theirs) and ours.vocab == theirs.get_vocab()
    print(f"training to {vocab_size:,} tokens ({merges:,} merges): ours {ours_s:.2f} s (+ {count_s:.2f} s counting), "
          f"tokenizers {hf_s:.2f} s (counting included); merges and ids identical: {identical}", flush=True)

    words = {(WORD_START, *w): c for w, c in counts.items()}
    _, plain_s = timed(lambda: learn_merges(words, plan["plain_merges"]))
    per_merge = plain_s / plan["plain_merges"]
    print(f"plain learn_merges: {per_merge:.3f} s per merge ({plan['plain_merges']} timed), so about "
          f"{per_merge * merges / 60:.0f} min for {merges:,} merges (ESTIMATE)", flush=True)

    encoding = [encode_figures(ours, theirs, valid, "valid")]
    if plan["train_encode"]:
        encoding.append(encode_figures(ours, theirs, train, "train"))
    for e in encoding:
        print(f"encode {e['split']}: ours {e['ours_cold_words_per_second']:,} words/s cold, "
              f"{e['ours_warm_words_per_second']:,} warm; tokenizers {e['tokenizers_words_per_second']:,} words/s; "
              f"ids identical: {e['ids_identical']}", flush=True)

    t0 = time.perf_counter()
    valid_words = _words(valid)
    tradeoff = []
    for size in plan["tradeoff"]:
        smaller = ours.truncated(size)  # one training gives every smaller vocabulary
        tokens = sum(len(smaller.encode(line)) for line in valid)
        tradeoff.append({"vocab_size": size, "tokens_per_word": round(tokens / valid_words, 4), "tokens": tokens})
    tradeoff_s = time.perf_counter() - t0
    print("valid tokens per word: " + ", ".join(f"{r['vocab_size']:,}: {r['tokens_per_word']:.3f}" for r in tradeoff))

    result = stamp("bpe", kind="quick" if args.quick else "full",
                   note=(f"CPU; tokenizers on {args.threads or 'its default number of'} thread(s); ours is "
                         "single-threaded Python. Ours' training time excludes word counting (reported apart); "
                         "tokenizers' includes its own."),
                   tokenizers_threads=args.threads or None,
                   load_seconds=round(load_s, 2),
                   train_words=_words(train), distinct_words=len(counts), count_seconds=round(count_s, 3),
                   vocab_size=vocab_size, merges=merges, alphabet=len(ours.alphabet),
                   ours_train_seconds=round(ours_s, 2), tokenizers_train_seconds=round(hf_s, 2),
                   merges_and_ids_identical=identical,
                   plain_seconds_per_merge=round(per_merge, 4), plain_merges_timed=plan["plain_merges"],
                   plain_estimated_minutes=round(per_merge * merges / 60, 1),
                   encoding=encoding, tokens_per_word_valid=tradeoff, tradeoff_seconds=round(tradeoff_s, 2))
    save(result, out, echo=False)
    return result


if __name__ == "__main__":
    main()
