#!/usr/bin/env python3
"""Measure the language gate (model/serving/language.py): what it wrongly flags, what it
catches, how fast.

Prints, for the gate as configured in ``model.serving.language``:

- the share of English messages flagged as foreign on the hand-labelled chat set
  (model/training/chat_eval.tsv) and on GoEmotions train and dev (English Reddit comments), with
  the counts; flagged GoEmotions comments reviewed as genuinely not English
  (``REVIEWED_NOT_ENGLISH``) are counted apart, and every flagged comment is listed (--show);
- recall on tests/data/foreign_chat.tsv (foreign chat messages): caught, and caught with the
  right language, per language;
- messages/s over all of the above (one thread), the time to load the detector and the
  memory it takes;
- the detector library and its version.

    python scripts/language_check.py
    python scripts/language_check.py --goemotions-dir ../shared/data/goemotions --show 20
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.serving.language import LanguageGate  # noqa: E402
from model.training.chateval import default_chat_set_path  # noqa: E402

# GoEmotions comments reviewed by hand as (mostly) not English. GoEmotions was filtered to
# English by its authors; these are the only ones a search over train+dev found (detector
# votes at loose thresholds, accented words), and each is half English at least, so the gate
# leaves them alone. A flagged comment listed here does not count as English wrongly flagged.
REVIEWED_NOT_ENGLISH: dict[str, str] = {
    "eetdm2z": "De un tronco a otro. I hope they wake up!  (Spanish, then English)",
    "ed2o1jf": "Eòrapaidh for me 😉  (a Scottish Gaelic place name)",
    "edom021": "... **putas** Qué eres mi que? ...  (Spanish phrase inside English)",
}


def read_tsv(path: Path, *, header: bool) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:] if header else rows


def share(part: int, whole: int) -> str:
    return f"{part:>4}/{whole:<6} ({100 * part / whole if whole else 0.0:.3f}%)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--goemotions-dir",
        type=Path,
        default=REPO.parent / "shared" / "data" / "goemotions",
        help="folder with GoEmotions train.tsv and dev.tsv [../shared/data/goemotions]",
    )
    parser.add_argument("--chat-set", type=Path, default=default_chat_set_path())
    parser.add_argument(
        "--foreign-set", type=Path, default=REPO / "tests" / "data" / "foreign_chat.tsv"
    )
    parser.add_argument("--show", type=int, default=50, help="flagged texts listed per set [50]")
    args = parser.parse_args(argv)

    gate = LanguageGate()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    gate.load()
    load_s = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"detector   py3langid {version('py3langid')} (model inside the wheel)")
    print(f"load       {load_s:.2f} s, +{(rss_after - rss_before) / 1024:.0f} MB peak RSS")

    total_messages = 0
    total_seconds = 0.0

    def run(texts: list[str]) -> list[str | None]:
        nonlocal total_messages, total_seconds
        start = time.perf_counter()
        result = gate.foreign(texts)
        total_seconds += time.perf_counter() - start
        total_messages += len(texts)
        return result

    print("\nEnglish wrongly flagged as foreign")
    chat = [row[0] for row in read_tsv(args.chat_set, header=True)]
    flags = run(chat)
    flagged = [(text, code) for text, code in zip(chat, flags, strict=True) if code]
    print(f"  chat set          {share(len(flagged), len(chat))}")
    for text, code in flagged[: args.show]:
        print(f"      {code}  {text!r}")

    for split in ("train", "dev"):
        path = args.goemotions_dir / f"{split}.tsv"
        if not path.is_file():
            print(f"  GoEmotions {split:5}  not found: {path} (see --goemotions-dir)")
            continue
        rows = read_tsv(path, header=False)
        flags = run([row[0] for row in rows])
        flagged_rows = [(row, code) for row, code in zip(rows, flags, strict=True) if code]
        genuine = [(row, code) for row, code in flagged_rows if row[2] in REVIEWED_NOT_ENGLISH]
        english = len(flagged_rows) - len(genuine)
        print(
            f"  GoEmotions {split:5}  {share(english, len(rows) - len(genuine))}"
            f"  [flagged {len(flagged_rows)}, of which reviewed as not English: {len(genuine)}]"
        )
        for row, code in flagged_rows[: args.show]:
            mark = "  (not English)" if row[2] in REVIEWED_NOT_ENGLISH else ""
            print(f"      {code}  {row[2]}  {row[0][:100]!r}{mark}")

    print("\nForeign chat caught")
    foreign = read_tsv(args.foreign_set, header=True)
    flags = run([row[0] for row in foreign])
    caught = sum(code is not None for code in flags)
    right = sum(code == row[1] for row, code in zip(foreign, flags, strict=True))
    print(f"  caught            {share(caught, len(foreign))}")
    print(f"  right language    {share(right, len(foreign))}")
    per_language: Counter[str] = Counter(row[1] for row in foreign)
    right_per: Counter[str] = Counter(
        row[1] for row, code in zip(foreign, flags, strict=True) if code == row[1]
    )
    counts = " ".join(f"{k} {right_per[k]}/{n}" for k, n in sorted(per_language.items()))
    print(f"  per language      {counts}")
    for row, got in zip(foreign, flags, strict=True):
        if got != row[1]:
            print(f"      expected {row[1]}, got {got}: {row[0]!r}")

    rate = total_messages / total_seconds if total_seconds else 0.0
    print(
        f"\nspeed      {rate:,.0f} messages/s over {total_messages:,}"
        " (one thread, markup stripping included)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
