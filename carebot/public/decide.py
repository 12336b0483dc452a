"""Deciding what to do with a public message: triage's one more dimension, visibility.

For a public message (a comment, a mention) triage has decided as for a private one (intent,
scores, emotion, reasons); the public-message classifier has said what it is
(:class:`~carebot.models.PublicCategory`). :meth:`PublicTriage.plan` turns both into a
:class:`PublicPlan`: what carebot posts, what an agent gets, and why.

* **spam** (and abuse): hidden when ``[public] hide_spam``; never deleted; recorded.
* **chatter**: recorded and left.
* **praise**: ``[public] thanks`` posted under it, or (empty) recorded and left.
* **complaint**: a person answers it (reason ``public_complaint``), with the matched answer as
  a draft when there is one.
* **care request**: moved to private when personal data is needed (the customer posted some, or
  the intent is marked ``personal_data: true``): a short public reply (``moved_private``) and a
  private reply (the intent's answer, or ``private_reply``); answered in public when it is safe
  (triage would answer, the score reaches ``[public] answer_threshold``, the intent is marked
  ``public: true``, the platform allows a reply there, and the text passes the personal-data
  guard); otherwise a draft for an agent (reason ``not_public``, with what stood in the way).

**Shadow mode** (a channel not in ``[public] live``): the plan's steps are kept as what carebot
*would* have done (``shadowed``), nothing is posted, and anything meant for the customer goes to
an agent as a draft (reason ``shadow``).

Every reply the bot posts in public carries ``[public] bot_tag``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from carebot.config import PublicSettings
from carebot.models import (
    Decision,
    DecisionKind,
    InboundMessage,
    PublicActionKind,
    PublicCategory,
    Reason,
)
from carebot.nlu.intents import Intent
from carebot.public.rules import ItemFacts, refusal, text_refusal

Guard = Callable[[str], str | None]  # a text's refusal for public posting (None: it may go)
Lookup = Callable[[str], Intent | None]  # the live intent of an id


@dataclass(frozen=True, slots=True)
class PublicStep:
    """One public action: ``text`` is what is posted (empty for hide and unhide), ``why`` the
    reason logged with a hide."""

    kind: PublicActionKind
    text: str = ""
    why: str = ""


@dataclass(frozen=True, slots=True)
class PublicPlan:
    """What carebot does about one public message. ``decision`` is stored as every decision
    is (its ``reply`` is None: public replies are ``steps``; its ``draft`` is what an agent
    may post); ``blocked`` says what kept an answer from going out in public."""

    category: PublicCategory
    decision: Decision
    steps: tuple[PublicStep, ...] = ()
    shadowed: tuple[PublicStep, ...] = ()
    blocked: str | None = None

    @property
    def hands_off(self) -> bool:
        return self.decision.hands_off


class PublicTriage:
    def __init__(self, *, settings: PublicSettings, intents: Lookup, guard: Guard) -> None:
        self._settings = settings
        self._intents = intents
        self._guard = guard

    def plan(
        self,
        inbound: InboundMessage,
        category: PublicCategory,
        decision: Decision,
        now: datetime,
    ) -> PublicPlan:
        """The plan for ``inbound`` (a public message) decided as ``decision``."""
        planned = self._plan(inbound, category, decision, now)
        if not self._settings.shadow(inbound.channel) or not planned.steps:
            return planned
        return self._shadowed(planned)

    def _shadowed(self, plan: PublicPlan) -> PublicPlan:
        """Shadow mode: nothing is carried out; what was meant for the customer goes to an
        agent as a draft (the private reply's text when the plan moved to private, else the
        public reply's), without the bot's tag: the agent's signature goes on it instead."""
        by_kind = {step.kind: step for step in plan.steps}
        meant = by_kind.get(PublicActionKind.PRIVATE_REPLY) or by_kind.get(PublicActionKind.REPLY)
        decision = plan.decision
        if meant is not None:
            tag = self._settings.bot_tag
            draft = meant.text.removesuffix(f" {tag}") if tag else meant.text
            reasons = _ordered((Reason.SHADOW, *decision.reasons))
            decision = replace(decision, kind=DecisionKind.HANDOFF, reasons=reasons, draft=draft)
        return replace(plan, decision=decision, steps=(), shadowed=plan.steps)

    def _plan(
        self, inbound: InboundMessage, category: PublicCategory, decision: Decision, now: datetime
    ) -> PublicPlan:
        cfg = self._settings
        base = replace(decision, reply=None)
        if category is PublicCategory.SPAM:
            steps = (PublicStep(PublicActionKind.HIDE, why="spam or abuse"),)
            return PublicPlan(category, _left(base, Reason.SPAM), steps if cfg.hide_spam else ())
        if category is PublicCategory.CHATTER:
            return PublicPlan(category, _left(base, Reason.CHATTER))
        if category is PublicCategory.PRAISE:
            if not cfg.thanks or self._refused(inbound, PublicActionKind.REPLY, now):
                return PublicPlan(category, _left(base, Reason.PRAISE))
            thanks = PublicStep(PublicActionKind.REPLY, cfg.tagged(cfg.thanks))
            return PublicPlan(category, _kind(base, DecisionKind.ANSWER, Reason.PRAISE), (thanks,))
        if category is PublicCategory.COMPLAINT:
            return PublicPlan(category, self._to_agent(base, Reason.PUBLIC_COMPLAINT))
        return self._care_request(inbound, base, now)

    def _care_request(self, inbound: InboundMessage, base: Decision, now: datetime) -> PublicPlan:
        category = PublicCategory.CARE_REQUEST
        intent = self._intents(base.intent) if base.intent else None
        if base.hands_off and base.reason in (Reason.EMOTIONAL, Reason.ASKED_FOR_HUMAN):
            return PublicPlan(category, self._to_agent(base, base.reason))
        needs_data = self._guard(inbound.text) is not None or (
            intent is not None and intent.personal_data and base.kind is DecisionKind.ANSWER
        )
        if needs_data:
            return self._moved_private(inbound, base, intent, now)
        blocked = self._public_answer_blocked(inbound, base, intent, now)
        if blocked is not None:
            return PublicPlan(category, self._to_agent(base, Reason.NOT_PUBLIC), blocked=blocked)
        answer = PublicStep(PublicActionKind.REPLY, self._settings.tagged(base.draft or ""))
        return PublicPlan(category, _kind(base, DecisionKind.ANSWER, Reason.CONFIDENT), (answer,))

    def _public_answer_blocked(
        self, inbound: InboundMessage, base: Decision, intent: Intent | None, now: datetime
    ) -> str | None:
        if base.kind is not DecisionKind.ANSWER or intent is None or not base.draft:
            return "the bot would not answer this on its own (see the reasons)"
        if base.score < self._settings.answer_threshold:
            return (
                f"the match ({base.score:.2f}) is below [public] answer_threshold "
                f"({self._settings.answer_threshold:.2f})"
            )
        if not intent.public:
            return f"the intent {intent.id!r} is not marked public: true"
        guarded = self._guard(base.draft)
        if guarded is not None:
            return f"the answer failed the personal-data guard: {guarded}"
        too_long = text_refusal(inbound.channel, self._settings.tagged(base.draft))
        return too_long or self._refused(inbound, PublicActionKind.REPLY, now)

    def _moved_private(
        self, inbound: InboundMessage, base: Decision, intent: Intent | None, now: datetime
    ) -> PublicPlan:
        category = PublicCategory.CARE_REQUEST
        refused = self._refused(inbound, PublicActionKind.PRIVATE_REPLY, now)
        if refused is not None:
            return PublicPlan(category, self._to_agent(base, Reason.NOT_PUBLIC), blocked=refused)
        private = base.draft if intent is not None and intent.personal_data and base.draft else ""
        steps = [
            PublicStep(PublicActionKind.PRIVATE_REPLY, private or self._settings.private_reply)
        ]
        if self._refused(inbound, PublicActionKind.REPLY, now) is None:
            # after the private reply, so that the note is true when it is read
            note = self._settings.tagged(self._settings.moved_private)
            steps.append(PublicStep(PublicActionKind.REPLY, note))
        decision = _kind(base, DecisionKind.ANSWER, Reason.MOVED_PRIVATE)
        return PublicPlan(category, decision, tuple(steps))

    def _to_agent(self, base: Decision, reason: Reason) -> Decision:
        reasons = (reason, *(r for r in base.reasons if r is not reason))
        return replace(base, kind=DecisionKind.HANDOFF, reasons=_ordered(reasons))

    def _refused(
        self, inbound: InboundMessage, action: PublicActionKind, now: datetime
    ) -> str | None:
        public = inbound.public
        assert public is not None
        facts = ItemFacts(
            channel=inbound.channel,
            kind=public.kind,
            top_level=public.top_level,
            addressed=public.addressed,
            hidden=public.hidden,
            removed=False,
            sent_at=inbound.sent_at,
        )
        return refusal(action, facts, now)


def _left(base: Decision, reason: Reason) -> Decision:
    return _kind(base, DecisionKind.LEAVE, reason)


def _kind(base: Decision, kind: DecisionKind, reason: Reason) -> Decision:
    """``base`` as ``kind``, ``reason`` first (what the plan rests on), triage's after."""
    reasons = (reason, *(r for r in base.reasons if r is not reason))
    return replace(base, kind=kind, reasons=reasons)


def _ordered(reasons: tuple[Reason, ...]) -> tuple[Reason, ...]:
    seen = dict.fromkeys(reasons)
    return tuple(sorted(seen, key=lambda r: r.rank))
