"""Sentence embeddings of whole dataset splits, cached on disk, for training and benchmarks.

Unlike :class:`carebot.nlu.embedding_cache.EmbeddingCache` (the matcher's examples, one file per
model that grows text by text), a split is encoded once and kept as one ``.npy`` file, with the
seconds the encoding took in a ``.json`` beside it: a rerun skips the model and can still report
the time. The file name holds the split's name, the model's name and a digest of the model id
and every text, so a changed split or model is encoded again. The encoder is loaded only when a
split is not cached yet.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from carebot.exceptions import ModelError
from carebot.nlu.encoder import Encoder, SentenceTransformerEncoder, fingerprint, resolve_model
from carebot.nlu.use_encoder import is_use, use_encoder, use_model_id

CHUNK = 512  # texts per encoder call, between progress reports
# progress(split name, texts encoded so far, texts in the split)
Progress = Callable[[str, int, int], None]


class DatasetEmbeddings:
    """The embeddings of dataset splits by one model, cached as ``.npy`` under ``folder``.

    ``model``: the model's name (in the file names); ``model_id``: the id of the encoder that
    ``load`` returns (in the digest); ``load``: builds the encoder, called once, when a split is
    not cached; ``progress``: told after each chunk while a split is encoded.
    """

    def __init__(
        self,
        *,
        folder: Path,
        model: str,
        model_id: str,
        load: Callable[[], Encoder],
        progress: Progress | None = None,
    ) -> None:
        self._folder = folder
        self._model = model
        self._model_id = model_id
        self._load = load
        self._progress = progress
        self._encoder: Encoder | None = None

    @classmethod
    def of_model(
        cls, folder: Path, model: str, progress: Progress | None = None
    ) -> DatasetEmbeddings:
        """Embeddings by ``model`` (a sentence-transformers model, or the multilingual encoder),
        loaded only if something is missing."""
        load: Callable[[], Encoder]
        if is_use(model):
            model_id, load = use_model_id(model), lambda: use_encoder(model)
        else:
            model_id = fingerprint(resolve_model(model))
            load = lambda: SentenceTransformerEncoder(model)  # noqa: E731
        return cls(folder=folder, model=model, model_id=model_id, load=load, progress=progress)

    @classmethod
    def of_encoder(
        cls, folder: Path, model: str, encoder: Encoder, progress: Progress | None = None
    ) -> DatasetEmbeddings:
        """Embeddings by an encoder already loaded (``model`` names it in the file names)."""
        return cls(
            folder=folder,
            model=model,
            model_id=encoder.model_id,
            load=lambda: encoder,
            progress=progress,
        )

    def of(self, name: str, texts: Sequence[str]) -> tuple[np.ndarray, float]:
        """The vectors of split ``name`` (one row per text) and the seconds they took to encode."""
        digest = hashlib.sha256("\n".join([self._model_id, *texts]).encode()).hexdigest()
        model = re.sub(r"[^\w-]+", "-", self._model).strip("-")
        stem = f"{name.replace('/', '-')}.{model}.{digest[:12]}"
        vectors_file, seconds_file = self._folder / f"{stem}.npy", self._folder / f"{stem}.json"
        if vectors_file.exists() and seconds_file.exists():
            return np.load(vectors_file), json.loads(seconds_file.read_text())["seconds"]
        vectors, seconds = self._encode(name, texts)
        self._folder.mkdir(parents=True, exist_ok=True)
        np.save(vectors_file, vectors)
        seconds_file.write_text(json.dumps({"seconds": seconds, "texts": len(texts)}))
        return vectors, seconds

    def _encode(self, name: str, texts: Sequence[str]) -> tuple[np.ndarray, float]:
        if self._encoder is None:
            self._encoder = self._load()
            if self._encoder.model_id != self._model_id:
                raise ModelError(
                    f"The encoder for {self._model} is {self._encoder.model_id}, not "
                    f"{self._model_id} as its cached embeddings are named"
                )
        parts = []
        start = time.perf_counter()
        if self._progress is not None:
            self._progress(name, 0, len(texts))
        for offset in range(0, len(texts), CHUNK):
            parts.append(self._encoder.encode(texts[offset : offset + CHUNK]))
            if self._progress is not None:
                self._progress(name, min(offset + CHUNK, len(texts)), len(texts))
        if not parts:
            raise ModelError(f"The split {name} has no texts to encode")
        return np.concatenate(parts), time.perf_counter() - start


def progress_bars() -> Progress:
    """A ``progress`` callback that shows one tqdm bar per split on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm[object]] = {}

    def show(name: str, done: int, total: int) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(total=total, desc=f"encoding {name}", unit="text")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return show
