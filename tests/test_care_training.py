"""The care upset set's loader and `carebot emotion train-care`, on small made-up data with
the fake encoder (no model): the head it writes is what EmotionScorer then scores with."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from carebot.cli import main
from carebot.config import EmotionSettings
from carebot.nlu.care_set import CareSetError, load_split
from carebot.nlu.emotion import EmotionScorer
from carebot.nlu.emotion_head import EmotionHead
from tests.fakes import FakeEncoder

CALM = ["where is my order {n}", "can I pay for order {n} with paypal", "my parcel {n} is late"]
MILD = ["still waiting for order {n}, getting annoyed", "second time asking about order {n}"]
UPSET = ["you are thieves, refund order {n} now", "worst shop ever, I will sue over order {n}"]
QUESTIONS = ["how do I top up card {n}", "what is the fee for transfer {n}", "freeze card {n}"]
SMALL_TALK = {"goodbye": "bye for now {n}", "thank_you": "thanks a lot {n}"}


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def care_rows(count: int) -> list[dict[str, str]]:
    rows = []
    for label, templates in (("calm", CALM), ("mild", MILD), ("upset", UPSET)):
        for n in range(count):
            text = templates[n % len(templates)].format(n=n)
            rows.append({"id": f"{label}-{n}", "text": text, "label": label, "style": "chat"})
    return rows


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A care set (train only) and the calm corpora: BANKING77 train, CLINC150 with small talk."""
    write_jsonl(tmp_path / "care" / "train.jsonl", care_rows(30))
    banking = tmp_path / "data" / "banking77"
    banking.mkdir(parents=True)
    with (banking / "train.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows([[QUESTIONS[n % 3].format(n=n), "card"] for n in range(60)])
    clinc = tmp_path / "data" / "clinc150"
    clinc.mkdir()
    train = [[QUESTIONS[n % 3].format(n=n + 100), "banking"] for n in range(60)]
    train += [[text.format(n=n), intent] for intent, text in SMALL_TALK.items() for n in range(20)]
    (clinc / "data_full.json").write_text(json.dumps({"train": train}), encoding="utf-8")
    domains = {"banking": ["banking"], "small_talk": list(SMALL_TALK)}
    (clinc / "domains.json").write_text(json.dumps(domains), encoding="utf-8")
    return tmp_path


def test_the_command_trains_a_head_that_tells_upset_from_calm(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = data / "head.npz"
    config = data / "config.toml"
    config.touch()
    args = ["-c", str(config), "emotion", "train-care", str(data / "data"), "--care"]
    args += [str(data / "care"), "--out", str(out), "--model", "fake-bag-of-words"]
    assert main([*args, "--cache", str(data / "cache")], encoder=FakeEncoder()) == 0
    output = capsys.readouterr().out
    assert "care train: 90 messages" in output and "reloaded head == training logits" in output
    head = EmotionHead.load(out, dim=FakeEncoder.dims)
    assert head.targets == ("upset", "frustrated")
    # Through EmotionScorer: every upset row scores above every calm one (and the small talk),
    # no calm row is flagged, and frustration ranks the mild rows above the calm ones too. (On
    # data this easy, cross-validation puts 0.5 at the lowest upset row of its folds, so the
    # model fitted on all rows may leave some upset rows just under it: no recall asserted.)
    scorer = EmotionScorer(EmotionSettings(escalation_words=()), head_weights=out)
    split = load_split(data / "care", "train")
    texts = [*split.texts, "thanks a lot 3", "bye for now 5"]
    pairs = zip(texts, FakeEncoder().encode(texts), strict=True)
    signals = [scorer.score(text, vector) for text, vector in pairs]
    labels = np.array([*split.labels, "calm", "calm"])
    value = np.array([s.value for s in signals])
    frustration = np.array([s.frustration for s in signals])
    calm, mild, upset = (labels == name for name in ("calm", "mild", "upset"))
    assert value[upset].min() > value[calm].max() and value[calm].max() < 0.5
    assert frustration[mild].min() > frustration[calm].max() and frustration[calm].max() < 0.5
    note = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "carebot emotion train-care" in note and "30 calm, 30 mild, 30 upset" in note
    assert "40 of CLINC150's small-talk training lines" in note


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected a JSON object"),
        ('{"id": "b", "text": "hi"}', "line 2: no text value for label"),
        ('{"id": "b", "text": "hi", "label": "angry"}', "line 2: label 'angry' is not one of"),
        ('{"id": "a", "text": "hi", "label": "calm"}', "line 2: id 'a' is already on line 1"),
    ],
)
def test_a_malformed_care_file_names_the_file_and_line(
    tmp_path: Path, line: str, error: str
) -> None:
    first = json.dumps({"id": "a", "text": "where is my order", "label": "calm"})
    (tmp_path / "test.jsonl").write_text(f"{first}\n{line}\n", encoding="utf-8")
    with pytest.raises(CareSetError, match=error) as raised:
        load_split(tmp_path, "test")
    assert str(tmp_path / "test.jsonl") in str(raised.value)


def test_the_targets_come_from_the_labels(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", care_rows(2))
    split = load_split(tmp_path, "train")
    assert split.counts() == {"calm": 2, "mild": 2, "upset": 2}
    assert np.array_equal(split.target("upset"), [0, 0, 0, 0, 1, 1])
    assert np.array_equal(split.target("frustrated"), [0, 0, 1, 1, 1, 1])
