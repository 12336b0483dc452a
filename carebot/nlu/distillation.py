"""``carebot model distil``: teach the multilingual encoder all-MiniLM-L6-v2's vectors.

The student is USE multilingual v3 (:class:`carebot.nlu.use_network.UseNetwork`) with a linear
layer to the teacher's 384 values; its embedding table stays frozen (it is what the 16 languages
share) and every layer after it learns. The loss is the cosine distance between the student's
vector and the teacher's (Reimers and Gurevych 2020, "Making monolingual sentence embeddings
multilingual using knowledge distillation"):

* English customer messages, each to its own teacher vector: the train splits of CLINC150 and
  BANKING77 (``DATA_DIR``) and of the care upset set (``data/care/train.jsonl``);
* each line of the care set's translations (``data/care/<code>/train.jsonl``, matched by id) to
  the teacher's vector of its English line, repeated so that the pairs weigh about a third.

Nothing of the shipped intents, and no test split, is read: intent matching is measured on
data the distillation never saw. The teacher's vectors are cached under ``cache``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from carebot.exceptions import ModelError
from carebot.nlu.care_set import REPOSITORY_SET, load_split
from carebot.nlu.dataset_embeddings import DatasetEmbeddings
from carebot.nlu.encoder import Encoder
from carebot.nlu.question_sets import banking77, clinc150
from carebot.nlu.tuning import warm_up_then_decay
from carebot.nlu.use_encoder import DISTILLED_FORMAT, PACKAGE

if TYPE_CHECKING:
    import torch

    from carebot.nlu.use_network import UseNetwork

log = logging.getLogger(__name__)
SEED = 20261207
LANGUAGES = ("de", "fr", "es")  # the care set's translations


@dataclass(frozen=True)
class DistilSettings:
    epochs: int = 3
    batch: int = 64
    learning_rate: float = 5e-4
    warmup: float = 0.05  # share of the steps over which the learning rate rises
    pair_share: float = 1 / 3  # how much of an epoch the translated pairs make up, at least


@dataclass(frozen=True)
class Distilled:
    path: Path
    english: int  # English texts
    pairs: int  # (translation, English line) pairs
    steps: int
    seconds: float
    final_loss: float


def training_pairs(
    data_dir: Path, care: Path = REPOSITORY_SET, languages: Sequence[str] = LANGUAGES
) -> tuple[list[str], list[tuple[str, str]]]:
    """The English texts, and the (translation, English) pairs of the care set's train split."""
    english = [text for text, _ in clinc150(data_dir, "train")] + banking77(data_dir, "train")
    source = load_split(care, "train")
    english += source.texts
    by_id = dict(zip(source.ids, source.texts, strict=True))
    pairs: list[tuple[str, str]] = []
    for code in languages:
        translated = load_split(care / code, "train")
        for id_, text in zip(translated.ids, translated.texts, strict=True):
            if id_ not in by_id:
                raise ModelError(f"{care / code / 'train.jsonl'}: id {id_!r} has no English line")
            pairs.append((text, by_id[id_]))
    return list(dict.fromkeys(english)), pairs


def teacher_vectors(teacher: Encoder, texts: Sequence[str], cache: Path) -> dict[str, np.ndarray]:
    """The teacher's vector of each text, cached in ``cache`` (keyed by the teacher's model id
    and the texts, as the emotion heads' training data is)."""
    unique = list(dict.fromkeys(texts))
    vectors, _ = DatasetEmbeddings.of_encoder(cache, "teacher", teacher).of("distil", unique)
    return dict(zip(unique, vectors, strict=True))


def distil(
    teacher: Encoder,
    data_dir: Path,
    out: Path,
    *,
    cache: Path,
    care: Path = REPOSITORY_SET,
    languages: Sequence[str] = LANGUAGES,
    settings: DistilSettings = DistilSettings(),
    progress: Callable[[int, int, float], None] | None = None,
) -> Distilled:
    """Train the student on ``teacher`` and write its weights to ``out`` (.npz, float16):
    English texts from ``data_dir`` and ``care``, and the translations of ``care`` into
    ``languages``."""
    import torch

    from carebot.nlu.use_network import UseNetwork

    started = time.perf_counter()
    english, pairs = training_pairs(data_dir, care, languages)
    targets = teacher_vectors(teacher, english + [source for _, source in pairs], cache)
    # each English text to itself, each translation to its English line, and each English line
    # of a pair once more per translation (as the shipped weights were trained)
    items = [(text, text) for text in english] + pairs + [(s, s) for _, s in pairs]
    repeat = max(1, int(len(english) * settings.pair_share) // max(1, len(pairs)))
    items += pairs * repeat
    torch.manual_seed(SEED)
    student = UseNetwork()
    dims = len(next(iter(targets.values())))
    output = torch.nn.Linear(student.dense["d3"].shape[1], dims)
    parameters = [*student.parameters(), *output.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate)
    steps = -(-len(items) // settings.batch) * settings.epochs
    schedule = warm_up_then_decay(optimizer, steps, settings.warmup)
    rng, step, loss_value = random.Random(SEED), 0, 0.0
    student.train()
    for _ in range(settings.epochs):
        rng.shuffle(items)
        for start in range(0, len(items), settings.batch):
            batch = items[start : start + settings.batch]
            vectors = torch.nn.functional.normalize(output(student([t for t, _ in batch])), dim=1)
            wanted = torch.from_numpy(np.stack([targets[s] for _, s in batch]).astype(np.float32))
            wanted = torch.nn.functional.normalize(wanted, dim=1)
            loss = (1.0 - (vectors * wanted).sum(dim=1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step, loss_value = step + 1, loss.item()
            if progress is not None:
                progress(step, steps, loss_value)
    save_student(out, student, output, teacher.model_id)
    seconds = time.perf_counter() - started
    log.info("Distilled %s into %s in %.0f s", teacher.model_id, out, seconds)
    return Distilled(out, len(english), len(pairs), steps, seconds, loss_value)


def save_student(out: Path, student: UseNetwork, output: torch.nn.Linear, teacher: str) -> None:
    """The student's dense layers and output layer, as float16, in the file format
    :func:`carebot.nlu.use_encoder.load_distilled` reads."""
    arrays = student.dense_arrays()
    arrays["out_W"] = output.weight.detach().numpy().T.copy()
    arrays["out_b"] = output.bias.detach().numpy().copy()
    saved: dict[str, np.ndarray] = {k: v.astype(np.float16) for k, v in arrays.items()}
    saved["format"] = np.array(DISTILLED_FORMAT)
    saved["package"] = np.array(f"{PACKAGE}=={metadata.version(PACKAGE)}")
    saved["teacher"] = np.array(teacher)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **saved)  # type: ignore[arg-type]
