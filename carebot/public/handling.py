"""A public message through the pipeline: classified, planned and recorded.

The inbox hands every public message here once triage has decided it as it decides any
message (:meth:`carebot.inbox.Inbox`): the public-message classifier says what it is, the plan
(:mod:`carebot.public.decide`) says what to do, and the plan is stored with what it queues in
one transaction (:mod:`carebot.store.public_decisions`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from carebot.clock import Clock
from carebot.models import Decision, InboundMessage, PublicCategory
from carebot.public.decide import PublicPlan, PublicTriage
from carebot.store.conversations import Embedding, Received
from carebot.store.outbox import Queued
from carebot.store.public_decisions import PublicDecisions

LEADING_HANDLES = re.compile(r"^(?:\s*@[\w.]+[,:]?)+\s*")


def matching_text(text: str) -> str:
    """The words of a public message the FAQ matcher reads: without the run of @handles a
    reply or mention starts with ("@northwind do you ship to Norway?" -> "do you ship to
    Norway?"), which says whom it is addressed to, not what it asks. A message that is only
    handles is read whole."""
    stripped = LEADING_HANDLES.sub("", text, count=1)
    return stripped if stripped.strip() else text


class PostClassifier(Protocol):
    def classify(self, text: str, vector: np.ndarray | None) -> PublicCategory:
        """What a public message is; ``vector`` is its embedding when the matcher made one
        (the classifier reuses it instead of encoding the text again)."""


@dataclass(frozen=True, slots=True)
class Handled:
    plan: PublicPlan
    queued: Sequence[Queued]


class PublicHandling:
    def __init__(
        self,
        *,
        classifier: PostClassifier,
        triage: PublicTriage,
        decisions: PublicDecisions,
        clock: Clock,
    ) -> None:
        self._classifier = classifier
        self._triage = triage
        self._decisions = decisions
        self._clock = clock

    async def classify_only(
        self, received: Received, inbound: InboundMessage, vector: np.ndarray | None
    ) -> PublicCategory:
        """Classify a public message that is only recorded (a person has the conversation),
        so agents see what it is; nothing is planned or carried out."""
        category = self._classifier.classify(inbound.text, vector)
        await self._decisions.record_category(received.message_id, category)
        return category

    async def handle(
        self,
        received: Received,
        inbound: InboundMessage,
        decision: Decision,
        timings: dict[str, float],
        embedding: Embedding | None,
        vector: np.ndarray | None = None,
    ) -> Handled:
        """Classify, plan and record ``inbound`` (a public message triage decided).
        ``vector``: the embedding of the message as posted, for the classifier (default: the
        matcher's, ``embedding``, when the matcher read the same text)."""
        if vector is None and embedding is not None:
            vector = embedding.vector
        category = self._classifier.classify(inbound.text, vector)
        plan = self._triage.plan(inbound, category, decision, self._clock())
        queued = await self._decisions.record(received, plan, timings, embedding)
        return Handled(plan, queued)
