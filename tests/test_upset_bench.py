"""bench/upset.py's pure parts: the care figures, the hand-checked exclusions, the shipped calm
examples and the candidate spec. No model and no dataset: the bench itself is run by hand."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from carebot.nlu.care_set import CareSplit
from carebot.nlu.intents import Intent, IntentSet, load_intents

ROOT = Path(__file__).resolve().parent.parent


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_upset", ROOT / "bench" / "upset.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


upset = _bench()

# (signal, label): at 0.5, flagged are the 0.9 upset, the 0.6 mild and the 0.7 calm.
CARE = [(0.9, "upset"), (0.6, "mild"), (0.4, "upset"), (0.7, "calm"), (0.1, "calm"), (0.2, "mild")]


def test_care_figures_of_a_small_labelled_list() -> None:
    signals, labels = zip(*CARE, strict=True)
    split = CareSplit("care/test", [f"t{i}" for i in range(len(CARE))], ["..."] * 6, list(labels))
    got = upset.care_figures(np.array(signals), split, 0.5)
    assert got == pytest.approx(
        {
            "upset_precision": 1 / 3,  # 1 of the 3 flagged is upset
            "upset_recall": 1 / 2,  # 1 of the 2 upset is flagged
            "upset_f1": 0.4,
            "not_calm_f1": 4 / 7,  # mild + upset: P 2/3, R 2/4
            "care_calm_flagged": 1 / 2,
        }
    )


def test_a_signal_at_the_threshold_is_flagged() -> None:
    split = CareSplit("care/test", ["a", "b"], ["you thieves", "hi"], ["upset", "calm"])
    got = upset.care_figures(np.array([0.6, 0.6]), split, 0.6)
    assert got["upset_recall"] == 1.0
    assert got["care_calm_flagged"] == 1.0
    assert upset.flagged_share(np.array([0.6, 0.59, 0.1, 1.0]), 0.6) == 0.5


def test_the_table_marks_each_cell_that_meets_its_goal() -> None:
    at_goals = {
        "threshold": 0.5,
        "upset_precision": 0.75,
        "upset_recall": 0.85,
        "upset_f1": 0.80,
        "not_calm_f1": 0.9,
        "care_calm_flagged": 0.5,
        "banking77": 0.02,
        "clinc150": 0.021,
        "shipped_calm": 0.0,
    }
    header, rule, row = upset.table([("candidate", at_goals)])

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    assert cells(row)[0] == "candidate"
    got = dict(zip(cells(header)[1:], cells(row)[1:], strict=True))
    assert got == {
        "thr": "0.50",
        "upset P": "0.750",
        "upset R": "0.850 ✓",
        "upset F1": "0.800 ✓",
        "mild+upset F1": "0.900",
        "care calm flagged": "50.0%",
        "BANKING77 flagged": "2.0% ✓",
        "CLINC150 flagged": "2.1%",
        "shipped calm flagged": "0.0% ✓",
    }
    assert rule.count("---") == len(upset.COLUMNS) + 1


def _write(path: Path, *rows: object) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


EXCLUSION = {
    "dataset": "banking77",
    "split": "test",
    "row": 1,
    "text": "this is unacceptable!!",
    "label": "upset",
    "why": "angry",
}


def test_exclusions_leave_out_their_rows_of_their_split(tmp_path: Path) -> None:
    other = EXCLUSION | {"dataset": "clinc150", "row": 0, "text": "you are annoying"}
    found = upset.read_exclusions(_write(tmp_path / "x.jsonl", EXCLUSION, other))
    texts = ["where is my card", "this is unacceptable!!", "card declined"]
    kept = upset.kept_rows("banking77/test", texts, found)
    assert kept.tolist() == [True, False, True]
    assert upset.kept_rows("banking77/train", texts, found).all()


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["where is my card", "card declined"], "row 1 of banking77/test is 'card declined'"),
        (["where is my card"], "row 1 of banking77/test is out of range"),
    ],
)
def test_an_exclusion_that_no_longer_fits_its_dataset_is_an_error(
    tmp_path: Path, texts: list[str], message: str
) -> None:
    found = upset.read_exclusions(_write(tmp_path / "x.jsonl", EXCLUSION))
    with pytest.raises(upset.BenchError, match=message):
        upset.kept_rows("banking77/test", texts, found)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": "goemotions"}, r"x.jsonl:1: dataset 'goemotions' is not one of"),
        ({"label": "calm"}, r"x.jsonl:1: label 'calm' must be mild or upset"),
        ({"row": "1"}, r"x.jsonl:1: 'row' must be an integer, got '1'"),
        ({"why": None}, r"x.jsonl:1: 'why' must be a string"),
    ],
)
def test_a_bad_exclusion_names_its_line(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(upset.BenchError, match=message):
        upset.read_exclusions(_write(tmp_path / "x.jsonl", EXCLUSION | change))


def test_an_exclusion_listed_twice_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(upset.BenchError, match=r"x.jsonl:2: banking77/test row 1 twice"):
        upset.read_exclusions(_write(tmp_path / "x.jsonl", EXCLUSION, EXCLUSION))


def test_the_shipped_exclusions_file_reads() -> None:
    found = upset.read_exclusions(upset.NOT_CALM)
    assert {ex.dataset for ex in found} <= set(upset.CHECKED)
    assert all(ex.why.strip() for ex in found)


def _intent(name: str, *examples: str) -> Intent:
    return Intent(id=name, examples=examples)


def test_shipped_calm_examples_leave_out_complaints_and_asking_for_a_person() -> None:
    intents = IntentSet(
        (
            _intent("order_status", "where is my order", "has my parcel shipped"),
            _intent("complaint", "I want to file a complaint"),
            _intent("talk_to_human", "let me talk to a person"),
            _intent("thanks", "thank you!"),
        )
    )
    assert upset.shipped_calm(intents) == [
        "where is my order",
        "has my parcel shipped",
        "thank you!",
    ]


def test_shipped_calm_examples_need_the_intents_they_leave_out() -> None:
    intents = IntentSet((_intent("order_status", "where is my order"), _intent("complaint", "x")))
    with pytest.raises(upset.BenchError, match="talk_to_human are not in intents/"):
        upset.shipped_calm(intents)


def test_the_repos_intents_give_the_shipped_calm_examples() -> None:
    intents = load_intents(ROOT / "intents")
    calm = upset.shipped_calm(intents)
    left_out = [ex for name in upset.NOT_SHIPPED_CALM for ex in intents[name].examples]
    assert len(calm) == len(intents.examples()[0]) - len(left_out)
    assert not set(calm) & set(left_out)


@pytest.mark.parametrize(
    ("spec", "path", "target", "threshold"),
    [
        ("heads/care.npz", "heads/care.npz", None, None),
        ("heads/care.npz:upset", "heads/care.npz", "upset", None),
        ("heads/care.npz:upset:0.35", "heads/care.npz", "upset", 0.35),
        ("heads/care.npz::0.6", "heads/care.npz", None, 0.6),
    ],
)
def test_a_candidate_head_spec(
    spec: str, path: str, target: str | None, threshold: float | None
) -> None:
    assert upset.parse_head(spec) == upset.HeadSpec(Path(path), target, threshold)


@pytest.mark.parametrize("spec", ["", ":upset", "a.npz:upset:0.5:x", "a.npz:upset:high", "a:b:2"])
def test_a_bad_candidate_head_spec_is_an_error(spec: str) -> None:
    with pytest.raises(upset.BenchError, match="--head"):
        upset.parse_head(spec)
