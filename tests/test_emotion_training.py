"""``carebot emotion train`` end to end, on a tiny GoEmotions-format folder and the fake encoder.

The folder is written to tmp_path in the dataset's own format (TSV without header, label ids,
the two mapping files), so the reader, the training, the weights file, its note and the
reload through EmotionScorer all run for real, in a few seconds.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from carebot.cli import main
from carebot.config import EmotionSettings
from carebot.exceptions import DataError
from carebot.nlu.emotion import EmotionScorer
from carebot.nlu.emotion_head import EmotionHead
from carebot.nlu.encoder import Encoder
from carebot.nlu.evaluation import f1_precision_recall
from carebot.nlu.goemotions import load_goemotions
from tests.fakes import FakeEncoder

NAMES = ["anger", "annoyance", "disapproval", "sadness", "joy", "gratitude", "neutral"]
SENTIMENT = {"negative": ["anger", "annoyance", "disapproval", "sadness"], "positive": ["joy"]}
EKMAN = {"anger": ["anger", "annoyance", "disapproval"], "joy": ["joy", "gratitude"]}
# Label -> phrases that carry it; a row joins two phrases of its label with filler.
PHRASES = {
    "anger": ["this is infuriating", "I am furious with you", "absolutely outrageous"],
    "annoyance": ["so annoying honestly", "stop doing that", "ugh not again"],
    "disapproval": ["that is wrong", "I do not agree at all", "bad idea really"],
    "sadness": ["I feel so sad", "this makes me cry", "such a loss"],
    "joy": ["I love this", "what a great day", "so happy for you"],
    "gratitude": ["thanks a lot", "thank you so much", "really appreciate it"],
    "neutral": ["the parcel came on monday", "it is a blue jacket", "we met at noon"],
}
FILLER = ["today", "again", "my order", "the shop", "[NAME]", "lol", "to be fair", "btw"]
ROWS = {"train": 56, "dev": 28, "test": 28}


def write_goemotions(folder: Path) -> Path:
    """A GoEmotions folder (``folder/goemotions``) with a few dozen rows per split."""
    data = folder / "goemotions"
    (data / "original").mkdir(parents=True)
    (data / "original" / "labels.txt").write_text("\n".join(NAMES) + "\n")
    (data / "sentiment_dict.json").write_text(json.dumps(SENTIMENT))
    (data / "ekman_mapping.json").write_text(json.dumps(EKMAN))
    rng = random.Random(7)
    for split, count in ROWS.items():
        lines = []
        for i in range(count):
            label = NAMES[i % len(NAMES)]
            ids = [NAMES.index(label)]
            if i % 5 == 0:  # some rows carry a second label, as in GoEmotions
                ids.append(NAMES.index(rng.choice(NAMES)))
            words = [*rng.sample(PHRASES[label], 2), rng.choice(FILLER)]
            text = " ".join(rng.sample(words, 3)) + ("!!" if i % 7 == 0 else "")
            lines.append(f"{text}\t{','.join(map(str, sorted(set(ids))))}\te{split}{i}\n")
        (data / "original" / f"{split}.tsv").write_text("".join(lines))
    return data


class NoEncoder:
    """Fails the test if anything is encoded (the embeddings must come from the cache)."""

    model_id = FakeEncoder.model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError(f"encoded {len(texts)} texts instead of using the cache")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_goemotions(tmp_path / "data")
    return tmp_path / "data"


def train(tmp_path: Path, data_dir: Path, *extra: str, encoder: Encoder | None = None) -> int:
    config = tmp_path / "config.toml"
    config.touch()
    args = ["-c", str(config), "emotion", "train", str(data_dir), "--model", "fake-bag-of-words"]
    args += ["--cache", str(tmp_path / "cache"), *extra]
    return main(args, encoder=encoder or FakeEncoder())


def printed_f1(output: str) -> dict[tuple[str, str], float]:
    found = re.findall(r"EmotionScorer at 0\.5, (\w+) (\w+): F1 ([\d.]+)", output)
    return {(split, target): float(f1) for split, target, f1 in found}


def test_the_command_trains_a_head_that_the_scorer_loads(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "heads" / "emotion.npz"
    assert train(tmp_path, data_dir, "--out", str(out), "--compare") == 0
    output = capsys.readouterr().out
    head = EmotionHead.load(out, dim=FakeEncoder.dims)
    assert head.encoder == "fake-bag-of-words" and head.targets == ("negative", "anger")
    assert head.lexicon is not None and "furious" in head.lexicon.index
    assert "alternative (dev, best threshold)" in output and "chosen on dev: epoch" in output
    assert f'head_weights = "{out.resolve()}"' in output  # not the head config.toml uses
    # The F1 it prints is what EmotionScorer gives with the written file.
    test = load_goemotions(data_dir).splits["test"]
    vectors = FakeEncoder().encode(test.texts)
    figures = printed_f1(output)
    assert len(figures) == 4
    for target in ("negative", "anger"):
        scorer = EmotionScorer(EmotionSettings(), head_weights=out, target=target)
        pairs = zip(test.texts, vectors, strict=True)
        values = np.array([scorer.score(text, vector).value for text, vector in pairs])
        f1 = f1_precision_recall(values >= 0.5, test.targets[target])[0]
        assert figures["test", target] == pytest.approx(f1, abs=5e-4)  # printed to 3 decimals
    note = out.with_suffix(".md").read_text()
    assert "carebot emotion train DATA_DIR --model fake-bag-of-words --out" in note
    assert "56 / 28 / 28 Reddit comments" in note and "512-dimensional" in note


def test_a_rerun_uses_the_cached_embeddings_and_writes_the_same_head(
    tmp_path: Path, data_dir: Path
) -> None:
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    assert train(tmp_path, data_dir, "--out", str(first)) == 0
    assert train(tmp_path, data_dir, "--out", str(second), encoder=NoEncoder()) == 0
    with np.load(first) as a, np.load(second) as b:
        assert a.files == b.files
        for name in a.files:  # same process, same inputs, fixed seed: bit for bit
            assert np.array_equal(a[name], b[name]), name


def _drop(path: str) -> Callable[[Path], None]:
    return lambda data: (data / path).unlink()


def _append(path: str, line: str) -> Callable[[Path], None]:
    def change(data: Path) -> None:
        with (data / path).open("a") as handle:
            handle.write(line)

    return change


def _write(path: str, content: str) -> Callable[[Path], None]:
    return lambda data: (data / path).write_text(content)


@pytest.mark.parametrize(
    ("change", "named", "message"),
    [
        pytest.param(
            _drop("original/labels.txt"),
            "goemotions/original/labels.txt",
            "No GoEmotions under",
            id="no labels",
        ),
        pytest.param(_drop("original/dev.tsv"), "original/dev.tsv", "cannot read", id="no dev"),
        pytest.param(
            _append("original/train.tsv", "two\tcolumns\n"),
            "train.tsv:57",
            "3 tab-separated",
            id="two columns",
        ),
        pytest.param(
            _append("original/test.tsv", "text\t3,99\tid\n"),
            "test.tsv:29",
            "label id '99'",
            id="unknown label id",
        ),
        pytest.param(
            _append("original/dev.tsv", "text\t\tid\n"), "dev.tsv:29", "label id ''", id="no label"
        ),
        pytest.param(
            _write("sentiment_dict.json", "{not json"),
            "sentiment_dict.json:1",
            "not valid JSON",
            id="broken json",
        ),
        pytest.param(
            _write("ekman_mapping.json", '{"joy": []}'),
            "ekman_mapping.json",
            "'anger'",
            id="no anger",
        ),
        pytest.param(_write("original/test.tsv", ""), "original/test.tsv", "no rows", id="empty"),
        pytest.param(
            _write("original/labels.txt", "\n"),
            "original/labels.txt",
            "no label names",
            id="no label names",
        ),
    ],
)
def test_a_malformed_dataset_is_refused_naming_the_file(
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[Path], None],
    named: str,
    message: str,
) -> None:
    change(data_dir / "goemotions")
    out = tmp_path / "head.npz"
    assert train(tmp_path, data_dir, "--out", str(out), encoder=NoEncoder()) == 2
    error = capsys.readouterr().err
    assert error.startswith("carebot: ") and named in error and message in error
    assert not out.exists()
    with pytest.raises(DataError, match=re.escape(named)):
        load_goemotions(data_dir)


def test_a_missing_data_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = tmp_path / "nowhere"
    assert train(tmp_path, nowhere, "--out", str(tmp_path / "h.npz"), encoder=NoEncoder()) == 2
    error = capsys.readouterr().err
    assert f"{nowhere}: no such folder" in error and "original/labels.txt" in error


def test_the_folder_itself_may_be_given(data_dir: Path) -> None:
    inner = load_goemotions(data_dir / "goemotions")
    outer = load_goemotions(data_dir)
    assert inner.folder == outer.folder == data_dir / "goemotions"
    rows = outer.splits["train"]
    assert len(rows.texts) == ROWS["train"] and rows.labels.shape == (ROWS["train"], 7)
    # Targets follow the mapping files: a row is angry when any of its labels is in Ekman anger.
    assert np.array_equal(rows.targets["anger"], rows.labels[:, :3].sum(1) > 0)
    assert np.array_equal(rows.targets["negative"], rows.labels[:, :4].sum(1) > 0)


@pytest.mark.parametrize("out", ["blocked/head.npz", "head.pkl"])
def test_an_unwritable_out_is_refused_before_training(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], out: str
) -> None:
    (tmp_path / "blocked").write_text("a file where a folder should be")
    assert train(tmp_path, data_dir, "--out", str(tmp_path / out), encoder=NoEncoder()) == 2
    assert str(tmp_path / out) in capsys.readouterr().err


def test_the_help_says_what_data_dir_holds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["emotion", "train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for part in ("original/labels.txt", "train.tsv", "sentiment_dict.json", "ekman_mapping.json"):
        assert part in shown
