"""The intent classifier head: a logistic regression over the example embeddings.

Trained from the examples whenever intents load (seconds for 15,000 examples on two cores),
it tells intents apart better than the nearest example does (CLINC150 accuracy 0.955 against
0.880, bench/quality.py). A reload starts from the previous weights of the intents that are
still there, so editing one intent retrains in a fraction of a full fit.

Training is deterministic (fixed seed, one thread), so the same examples give the same head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SEED = 20261122
BATCH = 256
LEARNING_RATE = 0.05  # Adam's first step size; it falls linearly to zero over the training
MIN_STEPS = 1000  # small sets get more epochs: a 770-example set needs ~1000 steps to settle


@dataclass(frozen=True)
class Head:
    """Weights ``(dims, intents)`` and biases ``(intents,)``, columns in ``ids`` order."""

    ids: tuple[str, ...]
    weights: np.ndarray
    biases: np.ndarray

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Softmax over the intents, one row per vector."""
        logits = np.asarray(vectors, dtype=np.float32) @ self.weights + self.biases
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits


def train_head(
    vectors: np.ndarray,
    labels: Sequence[str],
    ids: Sequence[str],
    *,
    c: float = 10.0,
    epochs: int = 12,
    previous: Head | None = None,
) -> Head:
    """Fit a multinomial logistic regression (L2 strength ``1/c`` as in scikit-learn) with
    minibatch Adam, for ``epochs`` or ``MIN_STEPS`` steps, whichever is more. With
    ``previous``, intents it knows start from its weights and half as many steps are run:
    enough, since most of the head has not changed."""
    import torch  # the model is loaded already when a head is trained

    column = {intent: i for i, intent in enumerate(ids)}
    y = torch.tensor([column[label] for label in labels], dtype=torch.long)
    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    w0, b0 = _start(previous, ids, x.shape[1])
    per_epoch = math.ceil(len(labels) / BATCH)
    epochs = max(epochs, math.ceil(MIN_STEPS / per_epoch))
    if previous is not None:
        epochs = max(1, epochs // 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is faster and leaves a core free
    try:
        weights, biases = _fit(x, y, w0, b0, c=c, epochs=epochs)
    finally:
        torch.set_num_threads(threads)
    return Head(tuple(ids), weights, biases)


def _start(previous: Head | None, ids: Sequence[str], dims: int) -> tuple[np.ndarray, np.ndarray]:
    weights = np.zeros((dims, len(ids)), dtype=np.float32)
    biases = np.zeros(len(ids), dtype=np.float32)
    if previous is not None and previous.weights.shape[0] == dims:
        known = {intent: i for i, intent in enumerate(previous.ids)}
        for j, intent in enumerate(ids):
            if intent in known:
                weights[:, j] = previous.weights[:, known[intent]]
                biases[j] = previous.biases[known[intent]]
    return weights, biases


def _fit(
    x: torch.Tensor, y: torch.Tensor, w0: np.ndarray, b0: np.ndarray, *, c: float, epochs: int
) -> tuple[np.ndarray, np.ndarray]:
    import torch

    generator = torch.Generator().manual_seed(SEED)
    weights = torch.tensor(w0, requires_grad=True)
    biases = torch.tensor(b0, requires_grad=True)
    optimizer = torch.optim.Adam([weights, biases], lr=LEARNING_RATE)
    n = len(y)
    steps = epochs * math.ceil(n / BATCH)
    # The step size falls linearly to zero: the last steps settle instead of wandering.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    penalty = 1.0 / (2.0 * c * n)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, BATCH):
            rows = order[start : start + BATCH]
            optimizer.zero_grad()
            logits = x[rows] @ weights + biases
            loss = torch.nn.functional.cross_entropy(logits, y[rows])
            loss = loss + penalty * (weights * weights).sum()
            loss.backward()
            optimizer.step()
            schedule.step()
    return weights.detach().numpy().copy(), biases.detach().numpy().copy()
