"""Proposals from what agents answer and from what the bot did not answer.

- From an agent's reply (:meth:`ProposalMaker.from_reply`): the customer's question (their
  messages since the bot or an agent last wrote after one of them, leaving out asking for a
  person and small talk and what the bot said to those; at most the last three, joined) and
  the agent's reply. When the
  question already scores near an intent X (at or above X's draft threshold), the proposal adds
  it as an example of X; otherwise it is a new intent with the question as its first example
  and the reply as its draft answer.
- From an unanswered topic (:meth:`ProposalMaker.from_topic`): the topic's messages as examples
  (deduplicated, case and blanks ignored), added to the intent the topic is near, or as a new
  intent.

Flags (:class:`carebot.store.proposals.Flag`) tell the editor what to look at before
publishing: every piece of personal data found in the answer or an example
(:mod:`carebot.nlu.personal_data`, with the customer's and the agent's names as known names), and
every example that looks like another intent than the one it is proposed for: for a new intent,
its cosine similarity to another intent's closest example reaches ``[matcher] min_similarity``;
for examples of X, another intent scores within ``clarify_margin`` of X or above it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import numpy as np

from carebot.config import Settings
from carebot.insight.report import Topic
from carebot.insight.topics import stop_words
from carebot.nlu.language import folded
from carebot.nlu.matcher import Matcher
from carebot.nlu.personal_data import Finding, find_personal_data, redacted
from carebot.store.proposals import (
    Draft,
    Flag,
    Proposal,
    ProposalKind,
    ProposalStore,
    Source,
    Status,
)
from carebot.triage import Triage

T = TypeVar("T")
InModelThread = Callable[[Callable[[], T]], Awaitable[T]]
TOPIC_EXAMPLES = 25  # examples taken from a topic, at most
ID_WORDS = 4
PERSONAL = {
    "email": "an e-mail address",
    "phone": "a phone number",
    "order": "an order number",
    "payment": "payment details",
    "address": "a postal address",
    "name": "a name",
}


class ProposalMaker:
    def __init__(
        self,
        *,
        store: ProposalStore,
        triage: Triage,
        settings: Settings,
        in_model_thread: InModelThread[np.ndarray],
    ) -> None:
        self._store = store
        self._triage = triage
        self._settings = settings
        self._in_model_thread = in_model_thread

    async def from_reply(self, reply_message_id: int, *, author: str) -> Proposal:
        """A proposal from the agent's reply ``reply_message_id`` and the question before it."""
        context = await self._store.reply_context(reply_message_id)
        for proposal in await self._store.of_conversation(context.reply.conversation_id):
            if proposal.status is Status.OPEN and context.reply.id in proposal.message_ids:
                return proposal  # proposed already (a second click): one proposal
        asked = context.question  # at most QUESTION_MESSAGES of them
        question = " ".join(" ".join(m.text.split()) for m in asked)
        matcher = self._triage.matcher
        vector = (await self._encode(matcher, [question]))[0]
        match = matcher.match_vectors(vector[None, :])[0]
        best = match.intents[match.best.intent] if match.best else None
        known = [n for n in (context.customer_name, context.agent_name) if n]
        if best is not None and match.score >= self._triage.thresholds(best)[1]:
            kind, intent_id, title, answer = ProposalKind.ADD_EXAMPLES, best.id, best.label, ""
        else:
            # The id and title are made without the customer's personal data (an id stays in
            # the decisions made under it; the example and answer are flagged for the editor).
            found = find_personal_data(question, known_names=known)
            kind = ProposalKind.NEW_INTENT
            intent_id = _new_id(_blanked(question, found), matcher)
            title, answer = _title(redacted(question, found)), context.reply.text.strip()
        flags = [
            *personal_data_flags("answer", answer, known),
            *personal_data_flags("example", question, known),
            *self._near(matcher, [question], vector[None, :], kind, intent_id),
        ]
        return await self._store.add(
            Draft(
                kind=kind,
                intent_id=intent_id,
                title=title,
                examples=(question,),
                answer=answer,
                source=Source.AGENT_REPLY,
                author=author,
                conversation_id=context.reply.conversation_id,
                message_ids=(*(m.id for m in asked), context.reply.id),
                flags=tuple(flags),
            )
        )

    async def from_topic(
        self,
        topic: Topic,
        texts: Sequence[str],
        *,
        author: str,
        name: str = "",
        new_intent: bool = False,
    ) -> Proposal:
        """A proposal from an unanswered topic whose messages are ``texts``: examples of the
        intent it is near, or (when it is near none, or ``new_intent``) a new intent
        (``name``, else made from the keywords)."""
        examples = _deduplicated(texts)[:TOPIC_EXAMPLES]
        if not examples:
            raise ValueError("The topic has no messages left to propose")
        matcher = self._triage.matcher
        near = topic.near_intent
        if near is not None and near in matcher.intents and not new_intent:
            kind, intent_id = ProposalKind.ADD_EXAMPLES, near
            title = matcher.intents[intent_id].label
        else:
            kind = ProposalKind.NEW_INTENT
            if name.strip():
                intent_id = _unique(_slug(name), matcher)
            else:
                intent_id = _new_id(" ".join(topic.keywords), matcher)
            title = name.strip() or " ".join(topic.keywords[:3]).capitalize()
        vectors = await self._encode(matcher, examples)
        flags = [f for e in examples for f in personal_data_flags("example", e, ())]
        flags += self._near(matcher, examples, vectors, kind, intent_id)
        return await self._store.add(
            Draft(
                kind=kind,
                intent_id=intent_id,
                title=title,
                examples=tuple(examples),
                source=Source.TOPIC,
                author=author,
                conversation_id=None,
                message_ids=topic.message_ids,
                flags=tuple(flags),
            )
        )

    async def _encode(self, matcher: Matcher, texts: Sequence[str]) -> np.ndarray:
        encoder = matcher.encoder
        return await self._in_model_thread(lambda: encoder.encode(list(texts)))

    def _near(
        self,
        matcher: Matcher,
        texts: Sequence[str],
        vectors: np.ndarray,
        kind: ProposalKind,
        intent_id: str,
    ) -> list[Flag]:
        """The examples that look like another intent than ``intent_id``."""
        ids = matcher.intent_ids
        if not ids:
            return []
        flags = []
        margin = self._settings.matcher.clarify_margin
        if kind is ProposalKind.NEW_INTENT:
            similar = matcher.similarities(vectors)
            for text, row in zip(texts, similar, strict=True):
                j = int(np.argmax(row))
                if row[j] >= matcher.min_similarity:
                    flags.append(_near_flag(text, ids[j], f"similarity {row[j]:.2f}"))
            return flags
        scores = matcher.scores(vectors)
        own = ids.index(intent_id) if intent_id in ids else None
        for text, row in zip(texts, scores, strict=True):
            mine = row[own] if own is not None else 0.0
            for j in np.argsort(-row)[:3]:
                if ids[j] != intent_id and row[j] >= mine - margin and row[j] > 0:
                    flags.append(_near_flag(text, ids[j], f"score {row[j]:.2f} vs {mine:.2f}"))
                    break
        return flags


def _near_flag(text: str, other: str, how: str) -> Flag:
    return Flag(
        field="example",
        kind="near_intent",
        text=text,
        message=f"{text!r} scores near the intent {other!r} ({how}): answers may get mixed up",
    )


def personal_data_flags(field: str, text: str, known: Sequence[str] = ()) -> list[Flag]:
    """A flag for each piece of one customer's personal data in ``text`` (the proposal's
    flags, and what the editor refuses to publish)."""
    return [
        Flag(
            field=field,
            kind=finding.kind,
            text=finding.text,
            message=f"{finding.text!r} looks like {PERSONAL[finding.kind]} of one customer: "
            "remove it, or write it as a placeholder, before publishing",
        )
        for finding in find_personal_data(text, known_names=known)
    ]


def _blanked(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with a blank in place of each finding."""
    for finding in sorted(findings, key=lambda f: f.start, reverse=True):
        text = text[: finding.start] + " " + text[finding.end :]
    return text


def _deduplicated(texts: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for text in texts:
        plain = " ".join(text.split())
        key = plain.casefold().strip(" .!?")
        if plain and key not in seen:
            seen.add(key)
            kept.append(plain)
    return kept


def _words(text: str) -> list[str]:
    """The words of ``text`` in lower-case ASCII (accents dropped: "Rückgabe" is "ruckgabe")."""
    return re.findall(r"[a-z0-9]+", folded(text))


def _slug(text: str) -> str:
    """An intent id (a Python identifier) made of the words of ``text``."""
    slug = "_".join(_words(text))[:60].strip("_") or "new_intent"
    return f"intent_{slug}" if slug[0].isdigit() else slug


def _new_id(text: str, matcher: Matcher) -> str:
    """An id for a new intent from the telling words of ``text``, not taken yet."""
    words = [w for w in _words(text) if w not in stop_words() and len(w) > 1]
    return _unique(_slug(" ".join(words[:ID_WORDS])) if words else "new_intent", matcher)


def _unique(base: str, matcher: Matcher) -> str:
    """``base``, or ``base_2``, ``base_3``...: the first that is no intent's id yet."""
    candidate, n = base, 2
    while candidate in matcher.intents:
        candidate, n = f"{base}_{n}", n + 1
    return candidate


def _title(question: str) -> str:
    text = question.strip()
    return text if len(text) <= 60 else text[:57].rstrip() + "..."
