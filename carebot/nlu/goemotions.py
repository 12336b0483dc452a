"""Reading the GoEmotions dataset (Demszky et al., ACL 2020) that the emotion head is trained on.

The folder is the one google-research publishes (or monologg's copy of it): ``original/labels.txt``
(the 28 label names, one a line), ``original/{train,dev,test}.tsv`` (no header; text, label ids
separated by commas, comment id), and the paper's mappings ``sentiment_dict.json`` (sentiment
groups) and ``ekman_mapping.json`` (Ekman's emotions). A row is positive for ``negative`` when
any of its labels is in the sentiment group ``negative``, and for ``anger`` when any is in Ekman
``anger`` (anger, annoyance, disapproval).

Anything missing or mis-shaped raises :class:`carebot.exceptions.DataError` naming the file (and
the line).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carebot.exceptions import DataError

TARGETS = ("negative", "anger")
SPLITS = ("train", "dev", "test")
LABELS = Path("original") / "labels.txt"
# The target -> (the mapping file, the group in it whose labels make a row positive).
MAPPINGS = {
    "negative": ("sentiment_dict.json", "negative"),
    "anger": ("ekman_mapping.json", "anger"),
}
EXPECTED = (
    "DATA_DIR holds goemotions/ (or is that folder): original/labels.txt, "
    "original/{train,dev,test}.tsv, sentiment_dict.json and ekman_mapping.json"
)


@dataclass(frozen=True, eq=False)
class EmotionSplit:
    """One split: texts, the original labels as a 0/1 matrix, and the targets."""

    name: str  # e.g. "goemotions/train"; names its cached embeddings
    texts: list[str]
    labels: np.ndarray  # (rows, labels) uint8
    targets: dict[str, np.ndarray]  # target name -> (rows,) bool


@dataclass(frozen=True, eq=False)
class GoEmotions:
    """The dataset: the label names and the ``train``, ``dev`` and ``test`` splits."""

    folder: Path
    names: list[str]
    splits: dict[str, EmotionSplit]


def data_folder(data_dir: Path) -> Path:
    """``DATA_DIR/goemotions`` or ``DATA_DIR`` itself, whichever holds the dataset."""
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder. {EXPECTED}.")
    for folder in (data_dir / "goemotions", data_dir):
        if (folder / LABELS).is_file():
            return folder
    raise DataError(
        f"No GoEmotions under {data_dir}: neither {data_dir / 'goemotions' / LABELS} nor "
        f"{data_dir / LABELS} exists. {EXPECTED}."
    )


def load_goemotions(data_dir: Path) -> GoEmotions:
    """The label names and the three splits, with the targets from the dataset's mappings."""
    folder = data_folder(data_dir)
    names = _read(folder / LABELS).split()
    if not names:
        raise DataError(f"{folder / LABELS}: no label names")
    members = {t: np.array([n in _group(folder, t) for n in names]) for t in TARGETS}
    splits = {}
    for split in SPLITS:
        labels, texts = _read_split(folder / "original" / f"{split}.tsv", names)
        targets = {t: labels[:, members[t]].sum(1) > 0 for t in TARGETS}
        splits[split] = EmotionSplit(f"goemotions/{split}", texts, labels, targets)
    return GoEmotions(folder, names, splits)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file: {exc}. {EXPECTED}.") from exc


def _group(folder: Path, target: str) -> list[str]:
    """The label names whose rows are positive for ``target``, from its mapping file."""
    name, key = MAPPINGS[target]
    path = folder / name
    try:
        mapping = json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    group = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(group, list) or not all(isinstance(n, str) for n in group):
        raise DataError(f"{path}: expected an object whose {key!r} is a list of label names")
    return group


def _read_split(path: Path, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """The 0/1 label matrix and the texts of one ``.tsv`` split."""
    rows: list[list[int]] = []
    texts: list[str] = []
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            for row in reader:
                rows.append(_label_ids(row, names, f"{path}:{reader.line_num}"))
                texts.append(row[0])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the file: {exc}. {EXPECTED}.") from exc
    if not rows:
        raise DataError(f"{path}: no rows")
    labels = np.zeros((len(rows), len(names)), dtype=np.uint8)
    for i, ids in enumerate(rows):
        labels[i, ids] = 1
    return labels, texts


def _label_ids(row: list[str], names: list[str], where: str) -> list[int]:
    if len(row) != 3:
        raise DataError(
            f"{where}: expected 3 tab-separated columns (text, label ids, comment id), "
            f"got {len(row)}"
        )
    ids = []
    for value in row[1].split(","):
        if not value.strip().isdigit() or int(value) >= len(names):
            raise DataError(
                f"{where}: label id {value!r} is not one of 0..{len(names) - 1} "
                f"(the lines of {LABELS})"
            )
        ids.append(int(value))
    return ids
