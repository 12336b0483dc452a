"""Recall of the public-reply personal-data guard on a seeded set (issue 18, §2).

    python bench/public_guard.py [--show]

``bench/public_guard_set.jsonl`` holds public replies a brand might post under comments
(English and some German), one per line with ``text`` and ``kind``: about half seeded with one
piece of personal data of a guarded kind (``email``, ``phone``, ``order``, ``payment``,
``address``) in varied shapes, awkward ones included (``jane dot doe at gmail dot com``, ``+44
7700 900 123``, ``Hauptstraße 5, 10115 Berlin``, lower-case IBANs, ``card ending 4242``), and
half ``clean`` but number-rich (prices, dates, hours, versions, sizes, links without ids). All
values are made up; nothing is downloaded.

Printed, from one run, side by side: the guard (:func:`carebot.public.guard.check_public_text`)
and the baseline, the plain detector (:func:`carebot.nlu.personal_data.find_personal_data`
restricted to the guarded kinds, without the unsure rules). A seeded row counts as caught when
the text is refused (the guard) or has a finding of a guarded kind (the baseline), whatever the
kind named; the false-refusal rate is the share of clean rows refused.

Two splits (field ``split``). ``tuning`` (170 rows: 84 seeded, 86 clean) was written before
the unsure rules were coded; its first run gave guard recall 1.00 (84/84) and 1 false refusal
(``SPRING25`` read as a street ending in "ring"; fixed). ``holdout`` (65 rows: 33 seeded, 32
clean) was written after the rules were frozen and measured once: guard recall 0.91 (30/33:
email 6/7, order 6/7, payment 5/6; missed ``tobi{at}gmx.de``, ``Order #A1B2C3D4E5``, ``Karte
mit Endziffern 3456``) and 1/32 false refusals (``2026/27``); baseline recall 0.73 (24/33).
Those four were then fixed as general rules (any bracket around "at", a code after an order
word, "Endziffern", season years), so the holdout is no longer unseen; the figures printed now
(1.00 recall, 0 false refusals on both splits) are after that fix. Both splits were written by
the same hands as the rules: the first holdout run (0.91) is the more honest estimate for real
replies, and all figures are an upper bound, not a promise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from carebot.nlu.personal_data import find_personal_data
from carebot.public.guard import GUARDED, check_public_text

SET = Path(__file__).resolve().parent / "public_guard_set.jsonl"


def _baseline(text: str) -> bool:
    return any(f.kind in GUARDED for f in find_personal_data(text))


def _guard(text: str) -> bool:
    return check_public_text(text) is not None


def _rate(hit: int, total: int) -> str:
    return f"{hit / max(total, 1):.2f} ({hit}/{total})"


def measure(rows: list[dict[str, str]], show: bool) -> None:
    """Print recall per kind and overall, and the false-refusal rate, for both."""
    total: Counter[str] = Counter(row["kind"] for row in rows)
    hits = {"baseline": Counter[str](), "guard": Counter[str]()}
    for row in rows:
        for name, refuses in (("baseline", _baseline), ("guard", _guard)):
            refused = refuses(row["text"])
            hits[name][row["kind"]] += refused
            wrong = refused if row["kind"] == "clean" else not refused
            if show and name == "guard" and wrong:
                label = "FALSE REFUSAL" if row["kind"] == "clean" else f"MISSED {row['kind']}"
                print(f"{label}: {row['text']}")
    print(
        f"{len(rows)} rows: {sum(total.values()) - total['clean']} seeded, {total['clean']} clean"
    )
    print(f"{'':<22}{'baseline (detector)':<24}{'guard':<24}")
    for kind in GUARDED:
        base, guard = hits["baseline"][kind], hits["guard"][kind]
        print(f"recall {kind:<15}{_rate(base, total[kind]):<24}{_rate(guard, total[kind]):<24}")
    seeded = sum(total[kind] for kind in GUARDED)
    overall = {name: sum(hits[name][kind] for kind in GUARDED) for name in hits}
    print(
        f"{'recall overall':<22}{_rate(overall['baseline'], seeded):<24}"
        f"{_rate(overall['guard'], seeded):<24}"
    )
    clean = total["clean"]
    print(
        f"{'false refusals':<22}{_rate(hits['baseline']['clean'], clean):<24}"
        f"{_rate(hits['guard']['clean'], clean):<24}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show", action="store_true", help="print the guard's misses")
    args = parser.parse_args()
    rows = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line]
    for split in ("tuning", "holdout"):
        print(f"\n== {split} ==")
        measure([row for row in rows if row["split"] == split], args.show)
    print("\n== all ==")
    measure(rows, show=False)


if __name__ == "__main__":
    main()
