"""Numbers in the notebooks' prose that no output of the notebook shows: hand-typed figures that drift.

A number in a Markdown cell is *earned* when the same number appears in one of the notebook's outputs
(what the run printed), or when its sentence cites where it comes from (a paper: "et al.", a year in
parentheses; another run: "reference", "published", "reported"). Left alone: years, section and
notebook numbers, numbers inside code, math and links, and small whole numbers (up to 12: "two
layers", "4 heads", which are choices, not measurements). What is left is a claim typed by hand:
print it from the cell's variables, or keep the sentence general (issue 29).

    python3 -m tools.claims [notebooks/04_transformer_lm.ipynb ...]   # every notebook by default
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])")
_HIDDEN = [re.compile(p, re.S) for p in (r"`[^`]*`", r"\$\$.*?\$\$", r"\$[^$]*\$", r"\]\([^)]*\)", r"<[^>]+>",
                                         r"https?://\S+")]
_CITED = re.compile(r"et al\.|\(\w[^()]*\b(19|20)\d\d\w?\)|\b(19|20)\d\d\b[^.]*\b(paper|published|reported)|"
                    r"\breference\b|\bpublished\b|\breport(s|ed)?\b|\bcard\b|\bcited\b", re.I)
_NOT_A_CLAIM = re.compile(r"(notebook|notebooks|section|cell|step|chapter|issue|seed|figure|table|part)s?\s*$", re.I)


def _outputs(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            parts.append("".join(text) if isinstance(text, list) else text)
            for kind in ("text/plain", "text/markdown", "text/html"):
                value = out.get("data", {}).get(kind, "")
                parts.append("".join(value) if isinstance(value, list) else value)
    return "\n".join(parts)


def _forms(number: str) -> set[str]:
    """The ways an output may print the same figure: 1,234 / 1234; 0.50 / 0.5 / .50."""
    plain = number.replace(",", "")
    forms = {number, plain}
    if "." in plain:
        forms.add(plain.rstrip("0").rstrip("."))
    elif len(plain) > 3:
        forms.add(f"{int(plain):,}")
    return forms


def unearned(path: Path) -> list[dict]:
    """Every hand-typed number of one notebook's Markdown: ``cell``, ``number`` and its ``sentence``."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    shown = _outputs(nb)
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        for pattern in _HIDDEN:
            text = pattern.sub(" ", text)
        for sentence in re.split(r"(?<=[.!?])\s+|\n\s*\n|\n[*#-]", text):
            if sentence.lstrip().startswith("#") or _CITED.search(sentence):
                continue
            for match in _NUMBER.finditer(sentence):
                number = match.group(0)
                value = float(number.replace(",", ""))
                before = sentence[: match.start()]
                if ("." not in number and value <= 12) or (1900 <= value <= 2030 and "." not in number) \
                        or _NOT_A_CLAIM.search(before):
                    continue
                if any(form in shown for form in _forms(number)):
                    continue
                found.append({"cell": index, "number": number, "sentence": " ".join(sentence.split())[:200]})
    return found


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    total = 0
    for path in paths:
        rows = unearned(path)
        total += len(rows)
        for row in rows:
            print(f"{path.name} cell {row['cell']}: {row['number']}  —  {row['sentence']}")
    print(f"{total} hand-typed numbers in {len(paths)} notebooks")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
