"""The public side's parts, built from settings for the runtime: the handling of public
messages (classifier, plan, recording) and the posting policy agents' public replies follow."""

from __future__ import annotations

from dataclasses import dataclass

from carebot.clock import Clock
from carebot.config import Settings
from carebot.nlu.intents import Intent
from carebot.public.decide import PublicTriage
from carebot.public.handling import PostClassifier, PublicHandling
from carebot.public.posting import Guard, PublicPosting
from carebot.store.conversations import ConversationStore
from carebot.store.database import Database
from carebot.store.public_decisions import PublicDecisions
from carebot.triage import Triage


def takes_public_messages(settings: Settings) -> bool:
    """Whether an enabled channel brings public messages in (Facebook and Instagram comments
    come through the [messenger] and [instagram] channels; X mentions through [x])."""
    return settings.messenger.enabled or settings.instagram.enabled or settings.x.enabled


@dataclass(frozen=True)
class PublicParts:
    handling: PublicHandling | None  # None: no classifier, public messages wait for agents
    posting: PublicPosting


def public_parts(
    settings: Settings,
    *,
    db: Database,
    triage: Triage,
    conversations: ConversationStore,
    clock: Clock,
    lease_replies: bool,
    classifier: PostClassifier | None,
    guard: Guard,
) -> PublicParts:
    """The handling reads the live intents (after any reload) for their public flags."""

    def intent(intent_id: str) -> Intent | None:
        intents = triage.matcher.intents
        return intents[intent_id] if intent_id in intents else None  # noqa: SIM401

    posting = PublicPosting(settings.public, guard)
    if classifier is None:
        return PublicParts(None, posting)
    handling = PublicHandling(
        classifier=classifier,
        triage=PublicTriage(settings=settings.public, intents=intent, guard=guard),
        decisions=PublicDecisions(db, conversations=conversations, lease_replies=lease_replies),
        clock=clock,
    )
    return PublicParts(handling, posting)
