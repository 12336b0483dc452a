"""The ONNX encoder: the sentence model exported by ``carebot model export``, run with
onnxruntime and the ``tokenizers`` library. No torch: a serving process starts in about a second
and holds half the memory (bench/backends.py).

An export is a folder with ``model.onnx`` (the transformer, the pooling and the normalisation in
one graph), ``tokenizer.json`` and ``carebot-onnx.json``, the manifest: which model it came from
(and that model's fingerprint, so a changed or retuned model shows the export is stale), the
dimensions, pooling, maximum sequence length, the export date, the graph's checksum and how
closely it matched sentence-transformers when it was verified.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carebot.exceptions import ModelError
from carebot.nlu.encoder import fingerprint, one_blas_thread, resolve_model

log = logging.getLogger(__name__)
MANIFEST = "carebot-onnx.json"
GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"
OUTPUT = "sentence_embedding"


@dataclass(frozen=True)
class Manifest:
    source: str  # the model as configured ([matcher] model)
    source_id: str  # its fingerprint when it was exported
    dimensions: int
    pooling: str  # mean / cls
    normalized: bool
    max_seq_length: int
    inputs: tuple[str, ...]
    exported_at: str
    sha256: str  # of model.onnx
    max_difference: float  # against sentence-transformers on the verification sentences
    opset: int

    def write(self, folder: Path) -> None:
        data = asdict(self) | {"inputs": list(self.inputs)}
        (folder / MANIFEST).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{**data, "inputs": tuple(data["inputs"])})
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"{path} is not a carebot ONNX manifest ({exc})") from exc


def available_cores() -> int:
    """The cores this process may run on (a container's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def export_problem(folder: Path, model: str, base_dir: Path | None) -> str | None:
    """Why ``folder`` cannot serve ``model`` (missing, unreadable or stale); None when it can."""
    if not (folder / MANIFEST).exists() or not (folder / GRAPH).exists():
        return f"There is no ONNX export of the model {model!r} in {folder}."
    try:
        manifest = Manifest.read(folder)
    except ModelError as exc:
        return str(exc)
    current = fingerprint(resolve_model(model, base_dir))
    if manifest.source != model or manifest.source_id != current:
        return (
            f"The ONNX export in {folder} was made from {manifest.source!r} "
            f"({manifest.source_id}), but [matcher] model is {model!r} ({current}): it is stale."
        )
    return None


class OnnxEncoder:
    """Encodes like :class:`carebot.nlu.encoder.SentenceTransformerEncoder`, from an export."""

    def __init__(self, folder: Path, *, threads: int | None = None, batch_size: int = 32) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.manifest = Manifest.read(folder)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1
        # Between calls the model's threads sleep instead of spinning: in a service the cores
        # they would burn are the ones the event loop (the web, the store) needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = onnxruntime.InferenceSession(
                str(folder / GRAPH), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"Cannot load the ONNX export in {folder}: {exc}") from exc
        self._tokenizer.enable_truncation(max_length=self.manifest.max_seq_length)
        self._tokenizer.no_padding()
        self._batch_size = batch_size
        self._model_id = f"{self.manifest.source_id}+onnx"
        one_blas_thread()
        log.info("Loaded the ONNX export of %s from %s", self.manifest.source, folder)

    @property
    def model_id(self) -> str:
        return self._model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        # As sentence-transformers does: stripped, and batched by length (less padding).
        encodings = self._tokenizer.encode_batch([str(t).strip() for t in texts])
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        out = np.zeros((len(encodings), self.manifest.dimensions), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            out[rows] = self._run([encodings[i] for i in rows])
        return out

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        shape = (len(encodings), width)
        ids = np.zeros(shape, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        types = np.zeros(shape, dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
            types[row, :n] = encoding.type_ids
        given = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feeds = {name: given[name] for name in self.manifest.inputs}
        (vectors,) = self._session.run([OUTPUT], feeds)
        return np.asarray(vectors, dtype=np.float32)
