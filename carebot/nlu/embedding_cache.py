"""Example embeddings cached on disk, keyed by model id and text: a restart does not re-encode."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from carebot.nlu.encoder import Encoder

log = logging.getLogger(__name__)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """One ``.npz`` file per model under ``directory``: text hashes and their vectors."""

    def __init__(self, directory: Path, model_id: str) -> None:
        self._file = directory / f"{hashlib.sha256(model_id.encode()).hexdigest()[:20]}.npz"
        self._rows: dict[str, np.ndarray] = {}
        if self._file.exists():
            try:
                with np.load(self._file) as data:
                    self._rows = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("Ignoring unreadable embedding cache %s: %s", self._file, exc)

    @property
    def folder(self) -> Path:
        """The cache's folder (trained heads are kept next to the embeddings)."""
        return self._file.parent

    def __len__(self) -> int:
        return len(self._rows)

    def encode(self, texts: Sequence[str], encoder: Encoder) -> np.ndarray:
        """Vectors for ``texts``; only texts never seen with this model are encoded."""
        keys = [_key(t) for t in texts]
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._rows}
        if missing:
            log.info(
                "Encoding %d new example(s) (%d cached)", len(missing), len(keys) - len(missing)
            )
            vectors = encoder.encode(list(missing.values()))
            self._rows.update(zip(missing.keys(), vectors, strict=True))
            self._save()
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._rows[k] for k in keys]).astype(np.float32, copy=False)

    def _save(self) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._rows.keys()))
        vectors = np.stack(list(self._rows.values()))
        fd, tmp = tempfile.mkstemp(dir=self._file.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, keys=keys, vectors=vectors)
            os.replace(tmp, self._file)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            log.warning("Could not write the embedding cache %s: %s", self._file, exc)
