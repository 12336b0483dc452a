"""Fakes for the tests: a deterministic encoder and a channel that records what it sends."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence

import numpy as np

from carebot.channel import Deliver
from carebot.exceptions import DeliveryError
from carebot.models import OutboundReply

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
