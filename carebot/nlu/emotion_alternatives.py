"""What the emotion head is chosen over (``carebot emotion train --compare``): the dev F1 of the
simpler alternatives, each at its best threshold on dev, beside the head's own parts.

* VADER alone (the score is -compound, the same for both targets);
* logistic regressions on the sentence embedding, with and without VADER's scores;
* the words alone (TF-IDF + logistic regression, as fitted for the head);
* the MLP alone (the chosen epoch).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from carebot.nlu.evaluation import best_f1_threshold
from carebot.nlu.goemotions import TARGETS, GoEmotions

WIDTH = 52  # of the method column


def compare_alternatives(
    data: GoEmotions,
    vectors: dict[str, np.ndarray],
    vader: dict[str, np.ndarray],
    words: np.ndarray,
    mlp: np.ndarray,
    *,
    say: Callable[[str], None],
) -> None:
    """Tell ``say`` one table row per alternative: its dev F1 (best threshold) per target.

    ``vader``: the standardised VADER scores per split; ``words`` and ``mlp``: the dev logits
    of the head's two parts."""
    from sklearn.linear_model import LogisticRegression

    dev, train = data.splits["dev"], data.splits["train"]

    def row(name: str, scores: np.ndarray) -> None:
        f1 = [best_f1_threshold(scores[:, k], dev.targets[t])[1] for k, t in enumerate(TARGETS)]
        say(f"  {name:<{WIDTH}}{f1[0]:>9.3f}{f1[1]:>9.3f}")

    say(f"  {'alternative (dev, best threshold)':<{WIDTH}}{'negative':>9}{'anger':>9}")
    row("VADER alone (-compound)", np.repeat(-vader["dev"][:, 3:4], 2, axis=1))
    both = {s: np.hstack([vectors[s], vader[s]]) for s in ("train", "dev")}
    for name, x_train, x_dev in (
        ("embedding + logistic regression", vectors["train"], vectors["dev"]),
        ("embedding + VADER + logistic regression", both["train"], both["dev"]),
    ):
        columns = [
            LogisticRegression(C=1.0, max_iter=3000)
            .fit(x_train, train.targets[t])
            .decision_function(x_dev)
            for t in TARGETS
        ]
        row(name, np.stack(columns, 1))
    row("TF-IDF words + logistic regression", words)
    row("MLP over embedding + VADER (chosen epoch)", mlp)
