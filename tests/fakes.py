"""Fakes for the tests: a deterministic encoder and a channel that records what it sends."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence

import numpy as np

from carebot.channel import Deliver
from carebot.exceptions import DeliveryError
from carebot.models import OutboundReply, PublicAction, PublicCategory
from carebot.public.actions import PrivateReplySent

_TOKEN = re.compile(r"[a-z0-9]+")


class FakeEncoder:
    """Bag of words hashed into 512 dimensions: texts sharing words are similar. No model."""

    model_id = "fake-bag-of-words"
    dims = 512

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                digest = hashlib.sha1(token.encode()).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dims] += 1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out


class GatedEncoder(FakeEncoder):
    """The fake encoder, told to hold the batch that holds a text until the test lets it go:
    a customer's message stays in hand as long as the test wants."""

    def __init__(self) -> None:
        super().__init__()
        self._held: str | None = None
        self.holding = threading.Event()  # the held batch is being encoded (the model's thread)
        self.gate = threading.Event()

    def hold(self, text: str) -> None:
        """Hold the next batch with a text containing ``text``, until :attr:`gate` is set."""
        self._held, self.holding, self.gate = text, threading.Event(), threading.Event()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        held = self._held
        if held is not None and any(held in text for text in texts):
            self._held = None
            self.holding.set()
            self.gate.wait(timeout=30)
        return super().encode(texts)


class RecordingChannel:
    """A channel stand-in: records replies and its lifecycle, can be told to fail the next
    sends. It keeps the channel contract (tests/test_channel_contract.py): stopping only ends
    receiving, and a closed channel refuses to send."""

    def __init__(self, name: str = "test") -> None:
        self.name = name
        self.sent: list[OutboundReply] = []
        self.failures: list[DeliveryError] = []
        self.lifecycle: list[str] = []  # "start", "stop", "close", in the order called
        self.receiving = False
        self.closed = False

    async def start(self, deliver: Deliver) -> None:
        self.deliver = deliver
        self.receiving = True
        self.lifecycle.append("start")

    async def stop(self) -> None:
        self.receiving = False
        self.lifecycle.append("stop")

    async def close(self) -> None:
        if self.receiving:
            await self.stop()
        self.closed = True
        self.lifecycle.append("close")

    async def send(self, reply: OutboundReply) -> str | None:
        if self.closed:
            raise DeliveryError(f"the {self.name} channel is closed")
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(reply)
        return f"{self.name}-{len(self.sent)}"

    def texts(self) -> list[str]:
        return [reply.text for reply in self.sent]


class PublicRecordingChannel(RecordingChannel):
    """A recording channel that also takes public actions (carebot.public.actions): each is
    recorded as ``(kind, target, text)``; ``failures`` fail them as they fail sends."""

    def __init__(self, name: str = "test") -> None:
        super().__init__(name)
        self.actions: list[tuple[str, str, str]] = []

    async def _act(self, kind: str, target: str, text: str = "") -> str:
        if self.closed:
            raise DeliveryError(f"the {self.name} channel is closed")
        if self.failures:
            raise self.failures.pop(0)
        self.actions.append((kind, target, text))
        return f"{self.name}-{kind}-{len(self.actions)}"

    async def reply_public(self, action: PublicAction, text: str) -> str | None:
        return await self._act("reply", action.target, text)

    async def reply_private(
        self, action: PublicAction, text: str, *, user_id: str
    ) -> PrivateReplySent:
        return PrivateReplySent(await self._act("private_reply", action.target, text), user_id)

    async def set_hidden(self, action: PublicAction, hidden: bool) -> None:
        await self._act("hide" if hidden else "unhide", action.target)


class FixedClassifier:
    """The public-message classifier's stand-in: a category per text, else ``default``."""

    def __init__(
        self,
        categories: dict[str, PublicCategory] | None = None,
        default: PublicCategory = PublicCategory.CARE_REQUEST,
    ) -> None:
        self.categories = dict(categories or {})
        self.default = default

    def classify(self, text: str, vector: np.ndarray | None) -> PublicCategory:
        return self.categories.get(text, self.default)
