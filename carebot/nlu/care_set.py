"""The care upset set: customer messages labelled calm, mild or upset (``data/care/``).

Its rubric and provenance are in ``data/care/README.md``. Each split is a JSONL file of objects
with ``id``, ``text``, ``label`` (one of :data:`LABELS`), ``style`` and ``kind``. The emotion
signal is trained on ``train`` (:mod:`carebot.nlu.care_training`) and measured on ``test``
(``bench/upset.py``); two targets are read from the labels:

* ``upset``: the label is ``upset`` (a person should take over);
* ``frustrated``: the label is ``mild`` or ``upset`` (a kind word helps).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carebot.exceptions import ModelError

LABELS = ("calm", "mild", "upset")
TARGETS = {"upset": ("upset",), "frustrated": ("mild", "upset")}
FIELDS = ("id", "text", "label")
# The repository's copy, when carebot runs from a checkout (not installed as a wheel).
REPOSITORY_SET = Path(__file__).resolve().parents[2] / "data" / "care"


class CareSetError(ModelError):
    """A care set file is missing or malformed."""


@dataclass(frozen=True, eq=False)
class CareSplit:
    """One split: ids, texts and labels, in file order."""

    name: str  # e.g. "care/train"; names its cached embeddings
    ids: list[str]
    texts: list[str]
    labels: list[str]

    def target(self, name: str) -> np.ndarray:
        """``(rows,)`` bool: which messages count as ``name`` (a key of :data:`TARGETS`)."""
        wanted = TARGETS[name]
        return np.array([label in wanted for label in self.labels], dtype=bool)

    def counts(self) -> dict[str, int]:
        return {label: self.labels.count(label) for label in LABELS}


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) for every non-blank line of a JSON Lines file; a line that is not
    a JSON object is a :class:`CareSetError` naming the file and the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CareSetError(f"Cannot read {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CareSetError(f"{path}, line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise CareSetError(f"{path}, line {number}: expected a JSON object")
        yield number, row


def load_split(folder: Path, split: str) -> CareSplit:
    """``folder/<split>.jsonl``, checked line by line (errors name the file and the line)."""
    path = folder / f"{split}.jsonl"
    if not path.is_file():
        raise CareSetError(
            f"The care set file {path} is missing. Point at the folder that holds "
            "train.jsonl and test.jsonl (the repository's data/care)."
        )
    ids: list[str] = []
    texts: list[str] = []
    labels: list[str] = []
    seen: dict[str, int] = {}
    for number, row in json_lines(path):
        where = f"{path}, line {number}"
        values = {name: row.get(name) for name in FIELDS}
        missing = [name for name, value in values.items() if not isinstance(value, str)]
        if missing:
            raise CareSetError(f"{where}: no text value for {', '.join(missing)}")
        id_, text, label = (str(values[name]) for name in FIELDS)
        if label not in LABELS:
            raise CareSetError(f"{where}: label {label!r} is not one of {', '.join(LABELS)}")
        if id_ in seen:
            raise CareSetError(f"{where}: id {id_!r} is already on line {seen[id_]}")
        seen[id_] = number
        ids.append(id_)
        texts.append(text)
        labels.append(label)
    if not ids:
        raise CareSetError(f"The care set file {path} has no messages")
    return CareSplit(f"care/{split}", ids, texts, labels)
