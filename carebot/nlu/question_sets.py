"""Customer question datasets read from a data folder (never copied into the project):
BANKING77 (``banking77/{train,test}.csv``) and CLINC150 (``clinc150/data_full.json``, with
``domains.json``). The care head learns calm questions from their train splits
(:mod:`carebot.nlu.care_training`); ``bench/upset.py`` measures on their test splits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from carebot.exceptions import ModelError


class QuestionSetError(ModelError):
    """A dataset file is missing under DATA_DIR."""


def banking77(data_dir: Path, split: str) -> list[str]:
    """BANKING77's texts of ``split`` (``train`` or ``test``), in file order."""
    path = _present(data_dir / "banking77" / f"{split}.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def clinc150(data_dir: Path, split: str) -> list[tuple[str, str]]:
    """CLINC150's (text, intent) rows of ``split`` (``train``, ``test``...; in scope only)."""
    path = _present(data_dir / "clinc150" / "data_full.json")
    return [(text, intent) for text, intent in json.loads(path.read_text(encoding="utf-8"))[split]]


def clinc150_domain(data_dir: Path, domain: str) -> frozenset[str]:
    """The intents of one CLINC150 domain (``clinc150/domains.json``), e.g. ``small_talk``."""
    path = _present(data_dir / "clinc150" / "domains.json")
    intents = json.loads(path.read_text(encoding="utf-8")).get(domain, [])
    if not intents:
        raise QuestionSetError(f"{path} lists no {domain} intents")
    return frozenset(intents)


def _present(path: Path) -> Path:
    if not path.is_file():
        raise QuestionSetError(
            f"{path} is missing: DATA_DIR must hold banking77/ and clinc150/ as they are "
            "published (../shared/data here)"
        )
    return path
