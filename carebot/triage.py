"""Triage: for each customer message, answer, draft, clarify or hand off, and say why.

The rules, in order of importance:

* the customer sounds upset (emotion signal at or above ``[emotion] threshold``) -> handoff;
* the customer asks for a person (a phrase from ``[triage] human_phrases`` or the
  ``human_intent``) -> handoff;
* the best intent is marked ``handoff: true`` -> handoff (with the intent's answer as a draft);
* the best intent has no answer yet (imported, not written) -> handoff;
* a second non-answer in a row -> handoff;
* the two best intents are closer than ``clarify_margin`` -> "Did you mean A or B?";
* the best score is below the draft threshold -> ask to rephrase (or hand off, see
  ``rephrase_first``; a customer who sounds frustrated is handed off, see
  ``rephrase_frustrated``);
* between the draft and the answer threshold -> a draft for an agent to approve (reason
  ``below_threshold``: below the answer threshold);
* otherwise the answer is sent; to a customer who sounds frustrated but not upset (the emotion
  head's mild output at or above ``[emotion] mild_threshold``) with an empathetic line and an
  offer of a person around it (``[messages] frustrated_answer``, reason ``frustrated``).

Every reason that applied is kept, most important first. Thresholds are global in config and
overridable per intent (``answer_threshold`` / ``draft_threshold`` in the intent file).

Two more judgements serve a customer waiting for a person: whether a message withdraws the
request (:meth:`Triage.withdraws`), and how urgent a handoff is (:class:`Priority`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from carebot.config import PrioritySettings, Settings
from carebot.hours import BusinessHours
from carebot.models import HANDOFF_REASONS, Choice, Decision, DecisionKind, Reason
from carebot.nlu.emotion import EmotionScorer, EmotionSignal
from carebot.nlu.intents import Intent
from carebot.nlu.matcher import Match, Matcher

NON_ANSWERS = (DecisionKind.CLARIFY,)


@dataclass(frozen=True, slots=True)
class TriageContext:
    """What triage needs to know about the conversation so far."""

    now: datetime
    last_kind: DecisionKind | None = None  # the bot's previous decision in this conversation
    offered: tuple[Choice, ...] = ()  # the options of that decision, if it was a clarification
    # the customer's language (ISO 639-1): of this message, else their latest placed one; None:
    # [languages] default. The bot answers and speaks in it (README, "Languages").
    language: str | None = None


class Triage:
    def __init__(self, *, matcher: Matcher, emotion: EmotionScorer, settings: Settings) -> None:
        self.matcher = matcher
        self._emotion = emotion
        self._settings = settings
        self._hours = BusinessHours(settings.business_hours)
        self._asks_for_human = _phrases(settings.triage.human_phrases)
        self._withdraws = _phrases(settings.triage.withdraw_phrases)

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def emotion(self) -> EmotionScorer:
        return self._emotion

    def with_matcher(self, matcher: Matcher) -> Triage:
        """The same rules and emotion signal over another matcher (to try an edited intent set
        before it is published)."""
        return Triage(matcher=matcher, emotion=self._emotion, settings=self._settings)

    def use(self, matcher: Matcher) -> None:
        """Match against another intent set from now on (a live reload). A match made with the
        previous one is still decided on correctly: it carries the intents it was made with."""
        self.matcher = matcher

    def decide(self, text: str, context: TriageContext) -> Decision:
        """Match, score emotion and apply the rules to one message."""
        return self.decide_matched(text, self.matcher.match(text), context)

    def decide_matched(self, text: str, match: Match, context: TriageContext) -> Decision:
        language = context.language or self._settings.languages.default
        signal = self._emotion.score(text, match.vector, language)  # reuses the embedding
        return self.decide_scored(text, match, signal, context)

    def decide_scored(
        self, text: str, match: Match, signal: EmotionSignal, context: TriageContext
    ) -> Decision:
        """Apply the rules to a message already matched and scored for emotion: one signal
        serves several matches of the same message (the change preview decides each message
        against the live and the edited intents)."""
        chosen = _chosen_option(text, context.offered)
        if chosen is not None and chosen.id in match.intents:  # gone if intents were reloaded
            return self._answer_choice(chosen, match, signal, context)
        return self._apply_rules(text, match, signal, context)

    def _apply_rules(
        self, text: str, match: Match, signal: EmotionSignal, context: TriageContext
    ) -> Decision:
        cfg = self._settings
        intents = match.intents
        best = intents[match.best.intent] if match.best else None
        answer_t, draft_t = self.thresholds(best, context.language)
        score, margin = match.score, match.margin
        reasons: set[Reason] = set()
        if signal.value >= cfg.emotion.threshold:
            reasons.add(Reason.EMOTIONAL)
        elif self._frustrated(signal):
            reasons.add(Reason.FRUSTRATED)
        recognised = best is not None and score >= draft_t
        if (self._asks_for_human and self._asks_for_human.search(_plain_quotes(text))) or (
            recognised and best is not None and best.id == cfg.triage.human_intent
        ):
            reasons.add(Reason.ASKED_FOR_HUMAN)
        if recognised and best is not None and best.id != cfg.triage.human_intent:
            if best.handoff:
                reasons.add(Reason.SENSITIVE_INTENT)
            if not self._answer(best, context):
                reasons.add(Reason.NO_ANSWER)  # not written yet (in the customer's language)
        options = self._close_options(match, context) if recognised else ()
        if len(options) > 1:
            reasons.add(Reason.AMBIGUOUS)
        if score < answer_t:
            reasons.add(Reason.BELOW_THRESHOLD)
        elif len(options) <= 1:
            reasons.add(Reason.CONFIDENT)
        failing = Reason.AMBIGUOUS in reasons or not recognised
        if failing and context.last_kind in NON_ANSWERS:
            reasons.add(Reason.REPEATED_FAILURE)
        kind = self._kind(reasons, recognised, score >= answer_t)
        ordered = tuple(sorted(reasons, key=lambda r: r.rank))
        draft = self._draft(best, context) if recognised else None
        return Decision(
            kind=kind,
            reasons=ordered,
            intent=best.id if best else None,
            score=score,
            margin=margin,
            emotion=signal.value,
            reply=self._reply(kind, best, options, context, Reason.FRUSTRATED in reasons),
            draft=draft,
            choices=options if kind is DecisionKind.CLARIFY else (),
            top=match.top,
            cues=signal.cues,
            small_talk=self._small_talk(best) if recognised else False,
            language=context.language,
        )

    def _small_talk(self, intent: Intent | None) -> bool:
        tags = self._settings.triage.small_talk_tags
        return intent is not None and bool(set(intent.tags) & set(tags))

    def _kind(self, reasons: set[Reason], recognised: bool, confident: bool) -> DecisionKind:
        if reasons & HANDOFF_REASONS:
            return DecisionKind.HANDOFF
        if Reason.AMBIGUOUS in reasons:
            return DecisionKind.CLARIFY
        if not recognised:
            cfg = self._settings.triage
            frustrated = Reason.FRUSTRATED in reasons and not cfg.rephrase_frustrated
            return (
                DecisionKind.CLARIFY
                if cfg.rephrase_first and not frustrated
                else DecisionKind.HANDOFF
            )
        return DecisionKind.ANSWER if confident else DecisionKind.DRAFT

    def _answer_choice(
        self, chosen: Choice, match: Match, signal: EmotionSignal, context: TriageContext
    ) -> Decision:
        intent = match.intents[chosen.id]
        scores = {s.intent: s.score for s in match.top}
        reasons: tuple[Reason, ...] = (Reason.CLARIFIED,)
        kind = DecisionKind.ANSWER
        frustrated = self._frustrated(signal)
        if frustrated:
            reasons = (Reason.FRUSTRATED, Reason.CLARIFIED)
        if signal.value >= self._settings.emotion.threshold:
            reasons, kind = (Reason.EMOTIONAL, Reason.CLARIFIED), DecisionKind.HANDOFF
        elif intent.handoff:
            reasons, kind = (Reason.SENSITIVE_INTENT, Reason.CLARIFIED), DecisionKind.HANDOFF
        elif not self._answer(intent, context):
            reasons, kind = (Reason.NO_ANSWER, Reason.CLARIFIED), DecisionKind.HANDOFF
        return Decision(
            kind=kind,
            reasons=reasons,
            intent=intent.id,
            score=scores.get(intent.id, match.score),
            margin=match.margin,
            emotion=signal.value,
            reply=self._reply(kind, intent, (), context, frustrated),
            draft=self._draft(intent, context),
            top=match.top,
            cues=signal.cues,
            small_talk=self._small_talk(intent),
            language=context.language,
        )

    def _frustrated(self, signal: EmotionSignal) -> bool:
        mild = self._settings.emotion.mild_threshold
        return 0 < mild <= signal.frustration and signal.value < self._settings.emotion.threshold

    def answers_while_waiting(self, decision: Decision) -> bool:
        """Whether a customer waiting for a person gets this decision's answer: a confident
        answer (``[triage] answer_while_waiting``), unless its intent has a tag from
        ``not_answered_while_waiting`` (small talk: the acknowledgement fits better)."""
        cfg = self._settings.triage
        if not cfg.answer_while_waiting or decision.kind is not DecisionKind.ANSWER:
            return False
        intents = self.matcher.intents
        if decision.intent is None or decision.intent not in intents:
            return True  # reloaded meanwhile: its tags are unknown, the answer is not
        return not set(intents[decision.intent].tags) & set(cfg.not_answered_while_waiting)

    def withdraws(self, text: str, decision: Decision) -> bool:
        """Whether a waiting customer's message says they no longer need a person ("never
        mind, found it"), judged conservatively: a phrase from ``[triage] withdraw_phrases``
        in a short message (``withdraw_max_words``) that asks nothing ("?"), and no reason
        that hands off on its own (upset, asks for a person, a sensitive topic...), and not a
        question the bot can answer."""
        if self._withdraws is None or not self._withdraws.search(_plain_quotes(text)):
            return False
        if "?" in text or len(text.split()) > self._settings.triage.withdraw_max_words:
            return False
        if HANDOFF_REASONS & set(decision.reasons):
            return False
        return decision.kind is not DecisionKind.ANSWER

    def thresholds(self, intent: Intent | None, language: str | None = None) -> tuple[float, float]:
        """The answer and draft thresholds that apply to ``intent`` for a customer placed in
        ``language``: the intent's own, else ``[languages.thresholds.<language>]``'s, else
        ``[matcher]``'s."""
        cfg = self._settings.matcher
        answer_t = cfg.answer_threshold
        draft_t = cfg.draft_threshold
        languages = self._settings.languages
        own = languages.thresholds.get(language or languages.default)
        if own is not None:
            answer_t = own.answer_threshold if own.answer_threshold is not None else answer_t
            draft_t = own.draft_threshold if own.draft_threshold is not None else draft_t
        if intent is not None:
            answer_t = intent.answer_threshold if intent.answer_threshold is not None else answer_t
            draft_t = intent.draft_threshold if intent.draft_threshold is not None else draft_t
        return answer_t, min(draft_t, answer_t)

    def _close_options(self, match: Match, context: TriageContext) -> tuple[Choice, ...]:
        """The best intents within ``clarify_margin`` of the first, each itself recognised."""
        intents = match.intents
        margin = self._settings.matcher.clarify_margin
        options = []
        for candidate in match.top:
            intent = intents[candidate.intent]
            if (
                match.score - candidate.score > margin
                or candidate.score < self.thresholds(intent, context.language)[1]
            ):
                break
            options.append(Choice(intent.id, intent.label_in(context.language)))
        return tuple(options)

    def _answer(self, intent: Intent, context: TriageContext) -> str:
        """The intent's answer to this customer, placeholders filled in: in their language,
        else (``[languages] missing_answer = "default"``) the default language's, introduced by
        ``untranslated_answer`` in theirs; empty when there is none to send."""
        settings = self._settings
        language = context.language or settings.languages.default
        if language == settings.languages.default:
            return _filled(intent.answer, settings.placeholders_in(None))
        answer = intent.answer_in(language)
        if answer.strip():
            return _filled(answer, settings.placeholders_in(language))
        if settings.languages.missing_answer == "handoff" or not intent.answer.strip():
            return ""
        said = settings.messages.in_language(language)
        english = _filled(intent.answer, settings.placeholders_in(None))
        return said.untranslated_answer.format(answer=english)

    def _draft(self, intent: Intent | None, context: TriageContext) -> str | None:
        """The answer an agent may send: in the customer's language when written, else the
        default language's (the agent sees which)."""
        if intent is None or intent.id == self._settings.triage.human_intent:
            return None
        language = context.language if intent.answer_in(context.language).strip() else None
        text = intent.answer_in(language)
        return _filled(text, self._settings.placeholders_in(language)) or None

    def _reply(
        self,
        kind: DecisionKind,
        intent: Intent | None,
        options: tuple[Choice, ...],
        context: TriageContext,
        frustrated: bool = False,
    ) -> str:
        messages = self._settings.messages.in_language(context.language)
        if kind is DecisionKind.ANSWER and intent is not None:
            answer = self._answer(intent, context)
            return messages.frustrated_answer.format(answer=answer) if frustrated else answer
        if kind is DecisionKind.CLARIFY:
            if len(options) > 1:
                labels = _either((o.label for o in options), messages.clarify_or)
                return messages.clarify.format(options=labels)
            return messages.rephrase
        if self._hours.is_open(context.now):
            return messages.holding if kind is DecisionKind.DRAFT else messages.handoff
        next_open = self._hours.describe_next_open(context.now, messages)
        return messages.handoff_closed.format(next_open=next_open)


class Priority:
    """How urgent a handoff is: the largest ``[priority]`` weight of its reasons, plus
    ``emotion_weight`` times its emotion signal. The largest weight, not the sum: several weak
    reasons do not outrank one strong one, while an upset customer always outranks the same
    handoff from a calm one."""

    def __init__(self, settings: PrioritySettings) -> None:
        self._settings = settings

    def __call__(self, reasons: Sequence[str], emotion: float) -> float:
        strongest = max((self._settings.weight(r) for r in reasons), default=0.0)
        return round(strongest + self._settings.emotion_weight * emotion, 4)


def _phrases(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """A case-insensitive pattern that finds any of ``phrases`` as whole words."""
    found = "|".join(re.escape(_plain_quotes(p.strip())) for p in phrases if p.strip())
    return re.compile(rf"\b({found})\b", re.IGNORECASE) if found else None


def _plain_quotes(text: str) -> str:
    """Typographic apostrophes (U+2019, U+2018) as typed ones, so that phrases match."""
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _filled(answer: str, placeholders: Mapping[str, str]) -> str:
    return answer.strip().format_map(dict(placeholders))


def _either(labels: Iterable[str], word: str) -> str:
    items = [f'"{label}"' for label in labels]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def _chosen_option(text: str, offered: tuple[Choice, ...]) -> Choice | None:
    """The option the customer picked by number, label or id, if they picked one."""
    if not offered:
        return None
    answer = " ".join(text.casefold().strip(" .!?\"'").split())
    by_name: Mapping[str, Choice] = {
        **{str(i): c for i, c in enumerate(offered, start=1)},
        **{c.label.casefold(): c for c in offered},
        **{c.id.casefold(): c for c in offered},
    }
    return by_name.get(answer)
