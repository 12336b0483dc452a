"""Asking the customer: "did that answer your question?" after a bot answer, and a 1-5 rating
once their conversation is resolved ([survey] in config, texts in [messages]).

* The question goes with the answer itself, with Yes / No buttons where the channel has them
  (web chat, Telegram, Meta); ``[survey] helpful`` says when: always, only for answers whose
  margin is below ``low_margin``, or never. Small talk, drafts, clarifications and handoffs
  never get it.
* The customer's next message, within ``reply_hours``, is read as the reply when it is one: a
  button, or a short typed yes / no without a "?" (``yes_words``, ``no_words``,
  ``max_words``; or the option's number, 1 or 2, as channels without buttons show them); a
  rating is a digit 1-5 alone ("4", "4/5", "4 stars"), or followed by a separator and a
  comment ("4 - quick, thanks"), or 1-5 stars. Anything else is a new question and goes to
  triage; the question then lapses.
* "Yes" is a confirmed bot resolution: thanks, and the rating request. "No" hands the
  conversation to a person (reason ``not_helpful``). A rating is stored with its comment and
  thanked for; it is never triaged as a question.

The rating request after an agent resolves a conversation is queued by the handoff store
(:meth:`carebot.store.handoffs.HandoffStore.resolve`), and after an assumed bot resolution by
:mod:`carebot.survey.ratings`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from carebot.config import Settings
from carebot.hours import BusinessHours
from carebot.models import Choice, Decision, DecisionKind, Reason
from carebot.store.conversations import Received
from carebot.store.surveys import HELPFUL, RATING, Pending, Question, Reply, SurveyStore

YES, NO = "yes", "no"
REPEATED = "repeated"  # a second tap on a survey's button: not an answer
_BUTTONS = frozenset({YES, NO, "1", "2", "3", "4", "5"})
_STARS = re.compile(r"^\s*([\u2b50\u2605]\ufe0f?){1,5}\s*$")
_SEPARATOR = r"[-\u2013\u2014,.;:!)]"
# "4", "4!", "4 - quick", "4/5", "4 stars great": a digit alone, with a unit, or a separator
# before the comment ("2 of my items are missing" is a new question, not a rating).
_RATING = re.compile(
    rf"^\s*([1-5])\s*(?:(?:/\s*5|out of 5|stars?|[\u2b50\u2605]\ufe0f?)\s*{_SEPARATOR}*"
    rf"|{_SEPARATOR}+|$)\s*(?P<comment>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_EDGES = " \t\n.!,;:'\"()"


class Surveys:
    """The survey's policy (when to ask, how a reply reads) over its store."""

    def __init__(self, *, store: SurveyStore, settings: Settings) -> None:
        self.store = store
        self._settings = settings
        self._survey = settings.survey
        self._messages = settings.messages
        self._hours = BusinessHours(settings.business_hours)
        self._yes = _words(self._survey.yes_words)
        self._no = _words(self._survey.no_words)

    def helpful_question(self, decision: Decision, language: str | None = None) -> Question | None:
        """The question to send with ``decision``'s answer, if one is due, in ``language``."""
        mode = self._survey.helpful
        if mode == "never" or decision.kind is not DecisionKind.ANSWER or decision.small_talk:
            return None
        if mode == "low_margin" and decision.margin >= self._survey.low_margin:
            return None
        said = self._messages.in_language(language)
        choices = (Choice(YES, said.helpful_yes_button), Choice(NO, said.helpful_no_button))
        return Question(HELPFUL, said.helpful_question, choices)

    def rating_question(self, language: str | None = None) -> Question | None:
        """The rating request in ``language``, unless ``[survey] rating`` is off."""
        if not self._survey.rating:
            return None
        choices = tuple(Choice(str(n), str(n)) for n in range(1, 6))
        return Question(RATING, self._messages.in_language(language).rating_request, choices)

    async def reply(self, received: Received, text: str) -> Reply | None:
        """The customer's answer to the question just put to them, if ``text`` is one. A text
        that answers no question whatever was asked ("where is my order?") is not looked up:
        most messages are not answers, and the look-up was a read per message."""
        if not any(self.read(pending, text) for pending in _ANY_QUESTION):
            return None
        pending = await self.store.pending(received)
        if pending is None:
            return None
        return self.read(pending, text)

    def read(self, pending: Pending, text: str) -> Reply | None:
        plain = " ".join(text.replace("\u2019", "'").casefold().split()).strip(_EDGES)
        if pending.answered or (pending.kind == RATING and plain in (YES, NO)):
            # A second tap on a button already answered (Telegram and WhatsApp keep old
            # buttons tappable): recorded, and nothing said.
            return Reply(pending, REPEATED) if plain in _BUTTONS else None
        if pending.kind == RATING:
            return _rating(pending, text)
        if not plain or "?" in plain or len(plain.split()) > self._survey.max_words:
            return None
        # A tapped button sends its id or label ("yes", "Yes"), whatever words are configured
        # for typing; "1" / "2" are the options' numbers, as channels without buttons show
        # them. "no" first: it must not read as "n..." of a yes word.
        if plain in (NO, "2") or self._no.match(plain):
            return Reply(pending, NO)
        if plain in (YES, "1") or self._yes.match(plain):
            return Reply(pending, YES)
        return None

    def not_helpful(self, reply: Reply, now: datetime, language: str | None = None) -> Decision:
        """The handoff after a "no": to a person, with reason ``not_helpful``."""
        said = self._messages.in_language(language)
        text = said.helpful_no
        if not self._hours.is_open(now):
            next_open = self._hours.describe_next_open(now, said)
            text = said.helpful_no_closed.format(next_open=next_open)
        return Decision(
            kind=DecisionKind.HANDOFF,
            reasons=(Reason.NOT_HELPFUL,),
            intent=reply.pending.intent,
            score=0.0,
            margin=0.0,
            emotion=0.0,
            reply=text,
            language=language,
        )


# Every kind of question, asked or answered already: what :meth:`Surveys.read` may be given.
_ANY_QUESTION = tuple(
    Pending(0, kind, 0, datetime.min, answered=answered)
    for kind in (HELPFUL, RATING)
    for answered in (False, True)
)


def _rating(pending: Pending, text: str) -> Reply | None:
    if "?" in text:
        return None
    if _STARS.match(text):
        return Reply(pending, str(sum(1 for c in text if c in "\u2b50\u2605")))
    found = _RATING.match(text)
    if found is None:
        return None
    comment = (found.group("comment") or "").strip() or None
    return Reply(pending, found.group(1), comment)


def _words(phrases: Iterable[str]) -> re.Pattern[str]:
    """Matches a text that starts with one of ``phrases`` as whole words."""
    found = "|".join(re.escape(p.casefold().strip()) for p in phrases if p.strip())
    return re.compile(rf"^({found})\b" if found else r"(?!)")
