"""The care upset set's loader and `carebot emotion train-care`, on small made-up data with
the fake encoder (no model): the head it writes is what EmotionScorer then scores with; in
English, or with the set's translation (``--languages``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from carebot.cli import main
from carebot.config import EmotionSettings
from carebot.nlu.care_set import LABELS, CareSetError, load_split
from carebot.nlu.care_training import FOLDS, SEED, _folds, language_questions
from carebot.nlu.emotion import EmotionScorer
from carebot.nlu.emotion_head import EmotionHead
from tests.fakes import FakeEncoder

CALM = ["where is my order {n}", "can I pay for order {n} with paypal", "my parcel {n} is late"]
MILD = ["still waiting for order {n}, getting annoyed", "second time asking about order {n}"]
UPSET = ["you are thieves, refund order {n} now", "worst shop ever, I will sue over order {n}"]
QUESTIONS = ["how do I top up card {n}", "what is the fee for transfer {n}", "freeze card {n}"]
SMALL_TALK = {"goodbye": "bye for now {n}", "thank_you": "thanks a lot {n}"}
# The same lines in German, for the care set's translation and the calm questions in German.
GERMAN = {
    "calm": [
        "wo ist meine bestellung {n}",
        "kann ich {n} mit paypal zahlen",
        "paket {n} kommt spaet",
    ],
    "mild": ["warte immer noch auf bestellung {n}, nervt", "frage zum zweiten mal nach {n}"],
    "upset": ["ihr seid diebe, erstattet {n} sofort", "schlimmster laden, ich verklage euch {n}"],
}
QUESTIONS_DE = ["wie lade ich karte {n} auf", "was kostet ueberweisung {n}", "karte {n} sperren"]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def care_rows(count: int, language: str = "en") -> list[dict[str, str]]:
    rows = []
    for label, english in (("calm", CALM), ("mild", MILD), ("upset", UPSET)):
        templates = english if language == "en" else GERMAN[label]
        for n in range(count):
            text = templates[n % len(templates)].format(n=n)
            rows.append({"id": f"{label}-{n}", "text": text, "label": label, "style": "chat"})
    return rows


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A care set (train only) in English and German, calm questions in German, and the calm
    corpora: BANKING77 train, CLINC150 with small talk. The test splits are not JSON: training
    must not read them."""
    write_jsonl(tmp_path / "care" / "train.jsonl", care_rows(30))
    write_jsonl(tmp_path / "care" / "de" / "train.jsonl", care_rows(30, "de"))
    for folder in (tmp_path / "care", tmp_path / "care" / "de"):
        (folder / "test.jsonl").write_text("{not json\n", encoding="utf-8")
    questions = [
        {
            "intent": "card",
            "text": QUESTIONS_DE[n % 3].format(n=n),
            "source": QUESTIONS[n % 3].format(n=n),
            "split": "test" if n % 4 == 3 else "train",
        }
        for n in range(45)
    ]
    not_calm = {
        "complaint": "ich beschwere mich offiziell",
        "talk_to_human": "holt mir einen menschen",
    }
    questions += [
        {"intent": i, "text": t, "source": t, "split": "train"} for i, t in not_calm.items()
    ]
    write_jsonl(tmp_path / "languages" / "intent_examples.de.jsonl", questions)
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


@pytest.mark.parametrize(
    ("languages", "facts"),
    [
        ([], ["care train: 90 messages;"]),
        (["de"], ["care train: 180 messages (90 English);", "VADER", "de 0.00%"]),
    ],
)
def test_the_command_trains_a_head_that_tells_upset_from_calm(
    data: Path, capsys: pytest.CaptureFixture[str], languages: list[str], facts: list[str]
) -> None:
    out = data / "head.npz"
    config = data / "config.toml"
    config.touch()
    args = ["-c", str(config), "emotion", "train-care", str(data / "data"), "--care"]
    args += [str(data / "care"), "--out", str(out), "--model", "fake-bag-of-words"]
    args += ["--languages", ",".join(languages)] if languages else []
    assert main([*args, "--cache", str(data / "cache")], encoder=FakeEncoder()) == 0
    output = capsys.readouterr().out
    assert "reloaded head == training logits" in output
    assert all(fact in output for fact in facts), output
    head = EmotionHead.load(out, dim=FakeEncoder.dims)
    assert head.targets == ("upset", "frustrated")
    # Through EmotionScorer: every upset row scores above every calm one (and the small talk,
    # and the calm questions in German when it learnt German), no calm row is flagged, and
    # frustration ranks the mild rows above the calm ones too. (On data this easy,
    # cross-validation puts 0.5 at the lowest upset row of its folds, so the model fitted on all
    # rows may leave some upset rows just under it: no recall asserted.)
    scorer = EmotionScorer(EmotionSettings(escalation_words=()), head_weights=out)
    splits = [load_split(data / "care" / folder, "train") for folder in ["", *languages]]
    calm = ["thanks a lot 3", "bye for now 5"]
    calm += [QUESTIONS_DE[n % 3].format(n=n) for n in range(45) if languages]
    texts = [text for split in splits for text in split.texts] + calm
    pairs = zip(texts, FakeEncoder().encode(texts), strict=True)
    signals = [scorer.score(text, vector) for text, vector in pairs]
    labels = np.array([label for split in splits for label in split.labels] + ["calm"] * len(calm))
    value = np.array([s.value for s in signals])
    frustration = np.array([s.frustration for s in signals])
    calm, mild, upset = (labels == name for name in ("calm", "mild", "upset"))
    assert value[upset].min() > value[calm].max() and value[calm].max() < 0.5
    assert frustration[mild].min() > frustration[calm].max() and frustration[calm].max() < 0.5
    note = " ".join(out.with_suffix(".md").read_text(encoding="utf-8").split())
    assert "carebot emotion train-care" in note and "30 calm, 30 mild, 30 upset" in note
    assert "40 of CLINC150's small-talk training lines" in note
    assert ("--languages de" in note) == bool(languages)
    assert ("grouped by id" in note) == bool(languages)


def test_the_calm_questions_in_a_language_are_its_train_split_but_complaints(data: Path) -> None:
    questions = language_questions(data / "languages", "de")
    expected = [QUESTIONS_DE[n % 3].format(n=n) for n in range(45) if n % 4 != 3]
    assert questions.texts == expected
    assert questions.sources == [QUESTIONS[n % 3].format(n=n) for n in range(45) if n % 4 != 3]


@pytest.mark.parametrize("value", ["en", "de,en", "de;fr", "deutsch!", ","])
def test_languages_are_codes_other_than_english(
    data: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    args = ["emotion", "train-care", str(data / "data"), "--languages", value]
    with pytest.raises(SystemExit):
        main(args, encoder=FakeEncoder())
    assert "--languages" in capsys.readouterr().err


def test_a_translation_that_changes_a_label_is_refused(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = care_rows(30, "de")
    rows[0]["label"] = "upset"
    write_jsonl(data / "care" / "de" / "train.jsonl", rows)
    config = data / "config.toml"
    config.touch()
    args = ["-c", str(config), "emotion", "train-care", str(data / "data"), "--care"]
    args += [str(data / "care"), "--out", str(data / "head.npz"), "--languages", "de"]
    assert main(args, encoder=FakeEncoder()) == 2
    error = capsys.readouterr().err
    assert "id 'calm-0' is labelled upset, but calm in" in error
    assert str(data / "care" / "de" / "train.jsonl") in error


def stratified_single_rows(labels: list[str]) -> list[np.ndarray]:
    """The care folds before translations (copied): stratified by label over single rows."""
    rng = np.random.default_rng(SEED)
    folds: list[list[int]] = [[] for _ in range(FOLDS)]
    for label in sorted(set(labels)):
        rows = rng.permutation([i for i, x in enumerate(labels) if x == label])
        for k, i in enumerate(rows):
            folds[k % FOLDS].append(int(i))
    return [np.array(sorted(f)) for f in folds]


@pytest.mark.parametrize("copies", [1, 2, 4])
def test_folds_keep_a_line_and_its_translations_together_stratified_by_label(
    copies: int,
) -> None:
    # 41 lines (uneven per label), each in `copies` languages, one language after another
    lines = [(f"line-{n}", LABELS[n % 3] if n % 5 else "upset") for n in range(41)]
    ids = [id_ for _ in range(copies) for id_, _ in lines]
    labels = [label for _ in range(copies) for _, label in lines]
    folds = _folds(ids, labels)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(ids)))
    fold_of = {i: k for k, fold in enumerate(folds) for i in fold.tolist()}
    for id_ in {id_ for id_, _ in lines}:
        assert len({fold_of[i] for i, x in enumerate(ids) if x == id_}) == 1
    for label in LABELS:
        lines_per_fold = [sum(labels[i] == label for i in fold) // copies for fold in folds]
        assert max(lines_per_fold) - min(lines_per_fold) <= 1, (label, lines_per_fold)
    if copies == 1:  # one row per id: the folds are the same as before translations
        expected = stratified_single_rows(labels)
        assert all(np.array_equal(a, b) for a, b in zip(folds, expected, strict=True))


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
