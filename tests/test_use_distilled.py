"""The distilled multilingual encoder: USE multilingual v3's network in torch
(carebot/nlu/use_network.py), taught a teacher's vectors (carebot/nlu/distillation.py), and
served on numpy with the dense layers it learned ([matcher] model =
"use-multilingual-distilled")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from carebot.exceptions import ModelError
from carebot.nlu.distillation import DistilSettings, distil, save_student, training_pairs
from carebot.nlu.emotion_head import PACKAGED_DISTILLED_HEAD, PACKAGED_USE_HEAD, packaged_head
from carebot.nlu.use_encoder import (
    DENSE,
    DISTILLED,
    UseEncoder,
    canonical,
    is_distilled,
    is_use,
    use_model_id,
)
from carebot.nlu.use_network import UseNetwork
from carebot.runtime import load_encoder
from tests.conftest import make_settings
from tests.fakes import FakeEncoder

# float32 products summed in another order (torch against numpy)
TOLERANCE = 1e-5

TEXTS = [
    "where is my order?",
    "  Wo ist meine Bestellung?  ",
    "Je voudrais annuler ma commande, s'il vous plaît",
    "a",
    "this is the third time I ask!!! still no refund, I want my money back today",
]


@pytest.fixture(scope="module")
def network() -> UseNetwork:
    return UseNetwork().eval()


def forward(network: UseNetwork, texts: list[str]) -> np.ndarray:
    with torch.no_grad():
        return network(texts).numpy()


def test_the_torch_network_gives_the_packages_vectors(network: UseNetwork) -> None:
    reference = UseEncoder().encode(TEXTS)
    assert np.abs(forward(network, TEXTS) - reference).max() <= TOLERANCE
    # padding a short text beside a long one changes nothing
    assert np.abs(forward(network, TEXTS[3:4]) - reference[3:4]).max() <= TOLERANCE


def changed_student(seed: int) -> tuple[UseNetwork, torch.nn.Linear]:
    """The package's network with every dense layer moved, and an output layer to 24 values."""
    torch.manual_seed(seed)
    student = UseNetwork().eval()
    with torch.no_grad():
        for value in student.dense.values():
            value.add_(0.05 * torch.randn_like(value))
    return student, torch.nn.Linear(512, 24)


def test_the_numpy_encoder_runs_the_weights_a_student_saved(tmp_path: Path) -> None:
    student, output = changed_student(1)
    path = tmp_path / "student.npz"
    save_student(path, student, output, "teacher-id")
    # what was saved is float16: compare with the student holding those values
    with np.load(path) as z, torch.no_grad():
        for name in DENSE:
            student.dense[name].copy_(torch.from_numpy(z[name].astype(np.float32)))
        output.weight.copy_(torch.from_numpy(z["out_W"].astype(np.float32).T))
        output.bias.copy_(torch.from_numpy(z["out_b"].astype(np.float32)))
        expected = torch.nn.functional.normalize(output(student(TEXTS)), dim=1).numpy()
    encoder = UseEncoder(path)
    got = encoder.encode(TEXTS)
    assert got.shape == (len(TEXTS), 24) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= TOLERANCE
    assert encoder.encode([]).shape == (0, 24)
    # the package's own encoder is untouched by another one loading changed weights
    assert (
        np.abs(UseEncoder().encode(TEXTS[:1]) - forward(UseNetwork().eval(), TEXTS[:1])).max()
        <= TOLERANCE
    )


def test_a_file_that_is_not_a_distilled_encoder_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(
        ModelError, match=r"other\.npz is not a distilled encoder's weights: no proj_W"
    ):
        UseEncoder(path)
    student, output = changed_student(2)
    save_student(path, student, output, "teacher-id")
    with np.load(path) as z:
        arrays = {key: z[key] for key in z.files}
    arrays["cnn_W"] = arrays["cnn_W"][:, :100]
    np.savez(path, **arrays)
    with pytest.raises(ModelError, match=r"cnn_W is \(1280, 100\), the installed"):
        UseEncoder(path)


@pytest.mark.parametrize(
    ("name", "distilled"),
    [("use-multilingual-distilled", True), (" Use-Distilled ", True), ("use-multilingual", False)],
)
def test_the_names(name: str, distilled: bool) -> None:
    assert is_use(name) and is_distilled(name) == distilled
    assert canonical(name) == ("use-multilingual-distilled" if distilled else "use-multilingual")
    assert packaged_head(name) == (PACKAGED_DISTILLED_HEAD if distilled else PACKAGED_USE_HEAD)
    assert (
        not is_distilled("all-MiniLM-L6-v2") and canonical("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    )


def test_the_configured_name_serves_the_packaged_weights(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, matcher={"model": "use-multilingual-distilled"})
    encoder = load_encoder(settings, export_if_missing=True, say=print)
    assert isinstance(encoder, UseEncoder) and encoder.dimensions == 384
    assert encoder.model_id == use_model_id("use-multilingual-distilled") != use_model_id()
    assert DISTILLED.is_file()
    english, german, other = encoder.encode(
        ["where is my order?", "Wo ist meine Bestellung?", "do you sell gift cards?"]
    )
    assert float(english @ german) > float(english @ other)


def write_data(folder: Path) -> tuple[Path, Path]:
    """A tiny CLINC150, BANKING77 and care set with one translation."""
    (folder / "clinc150").mkdir(parents=True)
    (folder / "banking77").mkdir()
    clinc = {"train": [["what time is it", "time"], ["book a flight to paris", "book_flight"]]}
    (folder / "clinc150" / "data_full.json").write_text(json.dumps(clinc))
    (folder / "banking77" / "train.csv").write_text("text,category\nmy card is lost,lost_card\n")
    care = folder / "care"
    (care / "de").mkdir(parents=True)
    lines = [
        ("c1", "where is my parcel", "Wo ist mein Paket"),
        ("c2", "I want a refund now", "Ich will sofort mein Geld zurück"),
    ]
    (care / "train.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": en, "label": "calm"}) + "\n" for i, en, _ in lines)
    )
    (care / "de" / "train.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": de, "label": "calm"}) + "\n" for i, _, de in lines)
    )
    return folder, care


def test_training_pairs_match_each_translation_to_its_english_line(tmp_path: Path) -> None:
    data, care = write_data(tmp_path)
    english, pairs = training_pairs(data, care, ("de",))
    assert english == [
        "what time is it", "book a flight to paris", "my card is lost",
        "where is my parcel", "I want a refund now",
    ]  # fmt: skip
    assert pairs == [
        ("Wo ist mein Paket", "where is my parcel"),
        ("Ich will sofort mein Geld zurück", "I want a refund now"),
    ]


def test_distillation_brings_the_student_closer_to_its_teacher(tmp_path: Path) -> None:
    data, care = write_data(tmp_path / "data")
    teacher = FakeEncoder()
    out = tmp_path / "student.npz"
    steps: list[float] = []
    done = distil(
        teacher,
        data,
        out,
        cache=tmp_path / "cache",
        care=care,
        languages=("de",),
        settings=DistilSettings(epochs=8, batch=4, learning_rate=3e-3),
        progress=lambda _step, _steps, loss: steps.append(loss),
    )
    assert done.english == 5 and done.pairs == 2 and done.steps == len(steps) > 0
    assert list((tmp_path / "cache").iterdir())  # the teacher's vectors, for a rerun
    texts = ["where is my parcel", "Wo ist mein Paket", "my card is lost"]
    wanted = teacher.encode(["where is my parcel", "where is my parcel", "my card is lost"])
    got = UseEncoder(out).encode(texts)
    assert got.shape == (3, teacher.dims)
    first, last = np.mean(steps[:3]), np.mean(steps[-3:])
    assert last < first / 2
    assert np.mean(np.sum(got * wanted, axis=1)) > 0.5
