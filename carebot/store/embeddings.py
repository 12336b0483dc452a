"""Customer messages' sentence embeddings, stored so that insight (the unanswered topics) does not
encode them again.

Each vector is kept as little-endian float16 bytes (768 bytes for all-MiniLM-L6-v2's 384
dimensions) with the fingerprint of the model that made it: the encoder's ``model_id``
(:func:`carebot.nlu.encoder.fingerprint`, which changes with the model's files; an ONNX export
has its own, ``...+onnx``). Vectors are only ever read back for one model: those another model
made are reported apart (:attr:`Loaded.other_model`), never mixed in.

Round trip: float16 keeps 11 significant bits, so every component comes back within
``2**-11`` of its value relatively (:data:`RELATIVE_ERROR`; components smaller than float16's
smallest normal number, ``6.1e-5``, within ``2**-25`` absolutely). For the encoders' unit
vectors that is at most ``4.9e-4`` per component, and a cosine similarity between two of them
moves by less than ``1e-3``.

Writing one: the pipeline adds :func:`embedding_row` to the session of the transaction that
stores the message's decision, so a message and its vector are committed together::

    session.add(embedding_row(received.message_id, match.vector, encoder.model_id))
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carebot.exceptions import StoreError
from carebot.store.database import Database
from carebot.store.tables import MessageEmbedding

log = logging.getLogger(__name__)
STORED = np.dtype("<f2")
RELATIVE_ERROR = 2.0**-11  # float16's unit roundoff
CHUNK = 1000  # message ids per query (well under SQLite's and asyncpg's parameter limits)


def pack(vector: np.ndarray) -> bytes:
    """A vector as stored: float16 bytes. It must be one finite row of numbers."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or not array.size:
        raise StoreError(f"An embedding is one row of numbers, not an array of shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.abs(array).max() > np.finfo(STORED).max:
        raise StoreError("An embedding must be finite and within float16's range (+-65504)")
    return array.astype(STORED).tobytes()


def unpack(data: bytes, dims: int) -> np.ndarray:
    """A stored vector back as float32 (not renormalised)."""
    vector = np.frombuffer(data, dtype=STORED)
    if vector.size != dims:
        raise StoreError(f"A stored embedding has {vector.size} numbers, its row says {dims}")
    return vector.astype(np.float32)


def as_stored(vector: np.ndarray) -> np.ndarray:
    """``vector`` as it reads back once stored (rounded to float16), so that what is computed
    from a vector just encoded equals what is computed from it later."""
    return unpack(pack(vector), np.asarray(vector).size)


def embedding_row(message_id: int, vector: np.ndarray, model: str) -> MessageEmbedding:
    """The row that keeps ``vector`` (the message's embedding, e.g. ``Match.vector``) made by
    ``model`` (the encoder's ``model_id``), for the pipeline to add to the transaction that stores
    the message's decision."""
    data = pack(vector)
    return MessageEmbedding(
        message_id=message_id, model=model, dims=len(data) // STORED.itemsize, vector=data
    )


@dataclass(frozen=True, slots=True)
class Loaded:
    """The stored embeddings of some messages, for one model.

    ``ids[i]`` is the message of ``vectors[i]``; ``other_model``: messages whose embedding
    another model made (by model); ``missing``: messages with none."""

    ids: tuple[int, ...]
    vectors: np.ndarray
    other_model: dict[str, tuple[int, ...]]
    missing: tuple[int, ...]

    @property
    def stale(self) -> tuple[int, ...]:
        """The messages without a vector of this model: another model's, or none."""
        others = (i for ids in self.other_model.values() for i in ids)
        return tuple(sorted((*others, *self.missing)))


class MessageEmbeddingStore:
    """Reads and writes :class:`MessageEmbedding` rows."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, vectors: Iterable[tuple[int, np.ndarray]], model: str) -> int:
        """Keep ``(message id, vector)`` pairs made by ``model``, replacing what a message had
        (another model's vector, after a model change); returns how many were written."""
        rows = [embedding_row(message_id, vector, model) for message_id, vector in vectors]
        if not rows:
            return 0
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        async with self._db.transaction() as session:
            for start in range(0, len(rows), CHUNK):
                values = [
                    {
                        "message_id": r.message_id,
                        "model": r.model,
                        "dims": r.dims,
                        "vector": r.vector,
                    }
                    for r in rows[start : start + CHUNK]
                ]
                statement = insert(MessageEmbedding).values(values)
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["message_id"],
                        set_={
                            "model": statement.excluded.model,
                            "dims": statement.excluded.dims,
                            "vector": statement.excluded.vector,
                        },
                    )
                )
        return len(rows)

    async def load(self, message_ids: Sequence[int], model: str) -> Loaded:
        """The vectors ``model`` made for ``message_ids`` (float32, in the order asked, each
        message once), and which messages have another model's vector or none."""
        wanted = list(dict.fromkeys(message_ids))
        found: dict[int, MessageEmbedding] = {}
        async with self._db.session() as session:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                rows = await session.scalars(
                    select(MessageEmbedding).where(MessageEmbedding.message_id.in_(chunk))
                )
                found.update((row.message_id, row) for row in rows)
        ids = [i for i in wanted if i in found and found[i].model == model]
        other: dict[str, list[int]] = {}
        for i in wanted:
            if i in found and found[i].model != model:
                other.setdefault(found[i].model, []).append(i)
        if other:
            log.info(
                "%d message embedding(s) were made by another model than %s (%s)",
                sum(len(v) for v in other.values()),
                model,
                ", ".join(sorted(other)),
            )
        vectors = [unpack(found[i].vector, found[i].dims) for i in ids]
        return Loaded(
            ids=tuple(ids),
            vectors=np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32),
            other_model={name: tuple(v) for name, v in sorted(other.items())},
            missing=tuple(i for i in wanted if i not in found),
        )


def _values(row: MessageEmbedding) -> dict[str, object]:
    columns = ("message_id", "model", "dims", "vector")
    return {name: getattr(row, name) for name in columns}
