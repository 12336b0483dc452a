"""``carebot intents tune``: fine-tune the sentence model on the intents, into a model folder.

Every layer of the sentence-transformers model is trained, with a softmax intent head over its
normalised embedding (cross-entropy, AdamW, linear warm-up then decay), so that examples of one
intent move together and intents move apart. The head is thrown away; the tuned model is saved
as an ordinary sentence-transformers folder that ``[matcher] model`` can point at, and the
matcher trains its own classifier on the tuned embeddings as usual.

On this project's 2-core CPU, 2 epochs over CLINC150's 15,000 examples take about 10 minutes;
bench/quality.py --tune measures what it buys.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from carebot.exceptions import ModelError
from carebot.nlu.encoder import resolve_model
from carebot.nlu.intents import IntentSet
from carebot.nlu.use_encoder import is_use

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer
    from tqdm import tqdm

log = logging.getLogger(__name__)
SCALE = 20.0  # logits = SCALE * (normalised embedding . class weight): a cosine classifier
SEED = 20261122


@dataclass(frozen=True)
class TuneSettings:
    epochs: int = 2
    batch: int = 32
    learning_rate: float = 5e-5
    warmup: float = 0.1  # share of the steps over which the learning rate rises


@dataclass(frozen=True)
class Tuned:
    folder: Path
    examples: int
    intents: int
    steps: int
    seconds: float
    final_loss: float


def shown_on(bar: tqdm[object]) -> Callable[[int, int, float], None]:
    """A ``progress`` callback for :func:`tune` that moves a tqdm bar (steps, last loss)."""

    def progress(_step: int, steps: int, loss: float) -> None:
        bar.total = steps
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.update(1)

    return progress


def tune(
    intents: IntentSet,
    model: str,
    out: Path,
    *,
    settings: TuneSettings = TuneSettings(),
    base_dir: Path | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> Tuned:
    """Fine-tune ``model`` on the examples of ``intents`` and save it to ``out``.

    ``progress(step, steps, loss)`` is called after every step."""
    if is_use(model):
        raise ModelError(
            f"Tuning fine-tunes a sentence-transformers model; {model!r} (the multilingual "
            "encoder) is not one. Its answers improve with examples in the intent files, "
            "in every language the customers write."
        )
    import torch
    from sentence_transformers import SentenceTransformer

    texts, labels = intents.examples()
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ModelError("Tuning needs at least two intents with examples")
    started = time.perf_counter()
    torch.manual_seed(SEED)
    st = SentenceTransformer(str(resolve_model(model, base_dir)), device="cpu")
    dimension = getattr(st, "get_embedding_dimension", st.get_sentence_embedding_dimension)
    dims = dimension()  # renamed in sentence-transformers 6
    assert dims is not None
    head = torch.nn.Linear(dims, len(classes), bias=False)
    column = {intent: i for i, intent in enumerate(classes)}
    y = torch.tensor([column[label] for label in labels])
    steps, loss_value = _train(st, head, texts, y, settings, progress)
    out.mkdir(parents=True, exist_ok=True)
    st.save(str(out))
    seconds = time.perf_counter() - started
    log.info("Tuned %s on %d examples in %.0f s; saved to %s", model, len(texts), seconds, out)
    return Tuned(out, len(texts), len(classes), steps, seconds, loss_value)


def warm_up_then_decay(
    optimizer: torch.optim.Optimizer, steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate rises linearly over the first ``warmup`` share of ``steps``, then falls
    linearly to 0 at the last step."""
    import torch

    warm = max(1, int(steps * warmup))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )


def _train(
    st: SentenceTransformer,
    head: torch.nn.Linear,
    texts: list[str],
    y: torch.Tensor,
    settings: TuneSettings,
    progress: Callable[[int, int, float], None] | None,
) -> tuple[int, float]:
    import torch

    optimizer = torch.optim.AdamW([*st.parameters(), *head.parameters()], lr=settings.learning_rate)
    steps = -(-len(texts) // settings.batch) * settings.epochs
    schedule = warm_up_then_decay(optimizer, steps, settings.warmup)
    prepare = getattr(st, "preprocess", None) or st.tokenize  # renamed in sentence-transformers 6
    st.train()
    loss_value, step = 0.0, 0
    rng = random.Random(SEED)
    for _ in range(settings.epochs):
        order = list(range(len(texts)))
        rng.shuffle(order)
        for start in range(0, len(order), settings.batch):
            rows = order[start : start + settings.batch]
            embedded = st(prepare([texts[i] for i in rows]))["sentence_embedding"]
            weights = torch.nn.functional.normalize(head.weight, dim=1)
            logits = SCALE * torch.nn.functional.normalize(embedded, dim=1) @ weights.T
            loss = torch.nn.functional.cross_entropy(logits, y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            loss_value = loss.item()
            if progress is not None:
                progress(step, steps, loss_value)
    st.eval()
    return steps, loss_value
