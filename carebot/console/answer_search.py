"""Finding an FAQ answer for an agent to insert into a reply (the inbox's search box, and
``/care faq <words>`` in Slack).

Two searches, merged:

* by meaning: the words are encoded and scored against every intent as the matcher scores a
  customer message; an intent scoring at least its draft threshold (the intent's
  ``draft_threshold``, else ``[matcher] draft_threshold``: what the bot would draft that
  answer for) is found;
* by words: every word typed (casefolded) begins a word of the intent's title, id, tags,
  examples or answer (as the agent sees it, placeholders filled in; titles and answers in
  every language written), so "refund" finds the refund answer even when a word or two carry
  little meaning to the model.

Answers come in the customer's language when the intent has one in it (the inbox asks in the
conversation's language), else in ``[languages] default``'s; each hit says which.

An answer holding every word typed comes first, then the others by meaning; within each, the
closer meaning first. Intents without an answer, and the human-handoff intent (``[triage]
human_intent``: its answer is the bot's "getting a colleague"), are never offered.

The encoding needs the model, which is not shared across threads: :meth:`AnswerSearch.search`
encodes in the calling thread (tests, the command line); :meth:`AnswerSearch.find` hands the
encoding to ``in_model_thread`` (the service's model thread) and does the rest on the event
loop.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from carebot.config import Settings
from carebot.nlu.intents import Intent, IntentSet
from carebot.nlu.matcher import Matcher

InModelThread = Callable[[Callable[[], np.ndarray]], Awaitable[np.ndarray]]
Why = Literal["meaning", "words"]
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Hit:
    """One answer found: the intent, its title, its answer as the customer would get it, the
    meaning score of the words for it (0-1), and why it was found ("meaning", "words" or
    both, in that order)."""

    intent: str
    title: str
    answer: str
    score: float
    why: tuple[Why, ...]
    language: str = ""  # the answer's (ISO 639-1)

    def as_json(self) -> dict[str, object]:
        return {
            "intent": self.intent,
            "title": self.title,
            "answer": self.answer,
            "score": round(self.score, 4),
            "why": list(self.why),
            "language": self.language,
        }


@dataclass(frozen=True, slots=True)
class _Offered:
    """An intent that may be offered: its rendered answer and the sorted words it holds."""

    intent: Intent
    answers: dict[str, str]  # by language, placeholders filled in; the default's first
    words: tuple[str, ...]
    floor: float  # the meaning score at which it is found without the words

    def has_all(self, typed: Sequence[str]) -> bool:
        return all(self._has(word) for word in typed)

    def _has(self, word: str) -> bool:
        at = bisect.bisect_left(self.words, word)
        return at < len(self.words) and self.words[at].startswith(word)


class AnswerSearch:
    def __init__(
        self,
        matcher: Callable[[], Matcher],
        settings: Settings,
        *,
        in_model_thread: InModelThread | None = None,
    ) -> None:
        self._matcher = matcher  # asked at each search: a live reload is searched at once
        self._settings = settings
        self._in_model_thread = in_model_thread
        self._indexed: tuple[IntentSet, list[_Offered | None]] | None = None

    def search(self, words: str, limit: int = 5, language: str | None = None) -> list[Hit]:
        """The best ``limit`` answers for ``words``, encoding them in this thread; in
        ``language`` where written (None: the default's)."""
        if not words.strip() or limit < 1:
            return []
        matcher = self._matcher()
        return self._rank(matcher, matcher.encoder.encode([words]), words, limit, language)

    async def find(self, words: str, limit: int = 5, language: str | None = None) -> list[Hit]:
        """:meth:`search`, the words encoded in the model's thread (``in_model_thread``)."""
        if not words.strip() or limit < 1:
            return []
        matcher = self._matcher()
        encode = lambda: matcher.encoder.encode([words])  # noqa: E731
        if self._in_model_thread is None:
            vector = encode()
        else:
            vector = await self._in_model_thread(encode)
        return self._rank(matcher, vector, words, limit, language)

    def _rank(
        self, matcher: Matcher, vector: np.ndarray, words: str, limit: int, language: str | None
    ) -> list[Hit]:
        offered = self._offered(matcher.intents)
        default = self._settings.languages.default
        if not any(offered):
            return []
        scores = matcher.scores(np.asarray(vector, dtype=np.float32))[0]
        typed = _WORD.findall(words.casefold())
        hits = []
        for item, score in zip(offered, scores, strict=True):
            if item is None:
                continue
            why: list[Why] = []
            if score >= item.floor:
                why.append("meaning")
            if typed and item.has_all(typed):
                why.append("words")
            if why:
                said = language if language in item.answers else next(iter(item.answers))
                title = item.intent.label_in(None if said == default else said)
                answer = item.answers[said]
                hits.append(Hit(item.intent.id, title, answer, float(score), tuple(why), said))
        hits.sort(key=lambda h: ("words" in h.why, h.score), reverse=True)
        return hits[:limit]

    def _offered(self, intents: IntentSet) -> list[_Offered | None]:
        """Per intent, in the matcher's order: what may be offered (None: never), kept until
        the intents are reloaded."""
        if self._indexed is not None and self._indexed[0] is intents:
            return self._indexed[1]
        default = self._settings.languages.default
        human = self._settings.triage.human_intent
        offered: list[_Offered | None] = []
        for intent in intents.intents:
            if not intent.answer.strip() or intent.id == human:
                offered.append(None)
                continue
            answers = {
                code: intent.render_answer(
                    self._settings.placeholders_in(code), None if code == default else code
                )
                for code in intent.written_in(default)
            }
            texts = [intent.label, *dict(intent.titles).values(), intent.id.replace("_", " ")]
            texts += [*intent.tags, *(ex for ex, _ in intent.all_examples()), *answers.values()]
            found = {word for text in texts for word in _WORD.findall(text.casefold())}
            floor = intent.draft_threshold
            if floor is None:
                floor = self._settings.matcher.draft_threshold
            offered.append(_Offered(intent, answers, tuple(sorted(found)), floor))
        self._indexed = (intents, offered)
        return offered
