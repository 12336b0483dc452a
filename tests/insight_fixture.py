"""The golden store of the insight figures: scripted conversations on a fake clock, written
through the real store APIs (ConversationStore, HandoffStore, ClosingStore); only the surveys
are inserted directly (:meth:`Script.ask`, :meth:`Script.answer`), with the semantics of the
``surveys`` table, and the team of some handoffs is set as routing sets it (:meth:`Script.route`;
the others have none, as handoffs from before teams existed: the default team's).
tests/test_insight_metrics.py asserts every figure of it exactly; the
dashboard's browser test and the test that the dashboard, ``carebot report`` and ``/metrics``
agree reuse it:

    settings = make_settings(tmp_path, **SECTIONS)
    golden = await build_golden_store(database, clock)   # leaves clock.now at NOW
    report = await Insight(db=database, settings=settings, clock=clock).report(PERIOD)
    assert report.automation.count == HEADLINE["automation"][0]

Times are UTC; the business time zone is Europe/Berlin (UTC+1 in November and December), open
Monday to Friday 09:00-18:00 (08:00-17:00 UTC). PERIOD is the two weeks from Monday 30 November
to Sunday 13 December 2026 in Berlin; NOW is Monday 14 December 12:00 UTC, so the period ended
less than 7 days ago (its cost saved is pending) while WEEK_ONE, its first week, did not.
The conversations, by start (the names are Golden's keys):

- ``before_window`` (not in PERIOD): started 30 minutes before it, continued inside it.
- ``at_since``: starts at exactly PERIOD.since; "yes" to "did that answer?" (confirmed), rated 5.
- ``helpful_no``: "no" to "did that answer?", then asks for a person; resolved by Ann; rated 2.
- ``kim_first`` / ``kim_again``: a customer whose conversation was closed comes back 3 days
  later on the same channel (two conversations; the first resolution is not durable, and the
  return is a repeat contact); each starts with a greeting (small talk).
- ``two_handoffs``: handed over twice (sensitive topic, then upset after hours); answered in 10
  minutes and, across the night, in 15 business minutes.
- ``small_talk_only``: "hi" and "thanks" only.
- ``agent_took``: answered by the bot, then taken over by an agent (an agent's handoff).
- ``weekend``: handed over on Friday 17:50 Berlin, answered on Monday 09:20 (30 business
  minutes, 63.5 hours of clock time); never resolved.
- ``lea_web`` / ``lea_telegram``: "yes" on web chat, then back 3.6 days later on Telegram (the
  same customer by phone number): a repeat contact on another channel, and not durable.
  ``lea_web`` starts on Sunday 23:30 UTC, which is Monday in Berlin (its week is the second).
- ``rated_after_close``: assumed resolved; its rating was typed after it closed and opened
  ``survey_only`` (not a contact, not in the population).
- ``late_rating``: assumed resolved; rated 1 more than [survey] reply_hours after the question.
- ``resolved_silently``: handed over, resolved by an agent without a reply (no response time),
  then written to by the agent (an agent's handoff).
- ``request_at_23h``: a request 23 hours after the bot's answer (not resolved);
  ``request_at_25h``: 25 hours after (resolved at the answer).
- ``lea_telegram``: see above (a draft: handed over, resolved by Bob).
- ``answer_25h_ago``: the bot's answer 25 hours before NOW (resolved);
  ``answer_23h_ago``: 23 hours before NOW (not yet).
- ``spans_end``: starts an hour before PERIOD.until, continues after it; handed over upset.
- ``at_until`` (not in PERIOD): starts at exactly PERIOD.until.

With TEAMS (:func:`team_settings`): ``care`` (the default team, 30-minute target, the global
hours), ``billing`` (15 minutes, its own hours 08:00-20:00 Berlin) and ``escalation`` (no
target). ``two_handoffs``' first handoff went to billing (met in 10 minutes), its second to
escalation; ``weekend`` and ``lea_telegram`` to billing (both missed); ``spans_end`` to care
(missed: 60 minutes); ``helpful_no`` and ``resolved_silently`` have no team (care's):
``helpful_no`` was answered exactly at its due time (met), ``resolved_silently`` resolved
unanswered exactly at its due time (no verdict). TEAM_FIGURES has what each team's row shows.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from carebot.config import Settings
from carebot.insight.report import Period
from carebot.models import Decision, DecisionKind, InboundMessage, Reason
from carebot.store.closing import ClosingStore
from carebot.store.conversations import ConversationStore, Received
from carebot.store.database import Database
from carebot.store.handoffs import HandoffStore
from carebot.store.tables import Conversation, DecisionRow, Handoff, Survey
from tests.conftest import Clock, settings_data

SINCE = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)  # Monday 30 November 00:00 in Berlin
UNTIL = datetime(2026, 12, 13, 23, 0, tzinfo=UTC)  # Monday 14 December 00:00 in Berlin
PERIOD = Period(SINCE, UNTIL)
WEEK_ONE = Period(SINCE, SINCE + timedelta(days=7))
NOW = datetime(2026, 12, 14, 12, 0, tzinfo=UTC)
WORKDAY = "09:00-18:00"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
SECTIONS: Mapping[str, dict[str, object]] = {
    "business_hours": {
        "timezone": "Europe/Berlin",
        **{day: WORKDAY for day in ("monday", "tuesday", "wednesday", "thursday", "friday")},
        "saturday": "",
        "sunday": "",
    },
    "insight": {"assume_resolved_hours": 24.0, "cost_per_contact": 35.0, "currency": "EUR"},
    "survey": {"reply_hours": 24.0},
}
# The headline figures of PERIOD at NOW, as (count, total): what tests/test_insight_metrics.py
# asserts, for the tests that show them elsewhere (dashboard, `carebot report`, /metrics).
HEADLINE: Mapping[str, tuple[int, int]] = {
    "conversations": (18, 18),
    "involvement": (13, 18),
    "confirmed": (2, 18),
    "assumed": (6, 18),
    "automation": (8, 18),
    "resolution_rate": (8, 13),
    "durable": (2, 4),
    "handoffs": (7, 18),
    "not_helpful": (1, 3),
    "repeat_contact": (2, 12),
    "csat_bot": (2, 2),
    "csat_human": (1, 2),
    "rating_response_bot": (2, 3),
    "rating_response_human": (2, 3),
    "emotional": (2, 27),
}

TEAMS: tuple[dict[str, object], ...] = (
    {"name": "care", "display_name": "Care team", "first_response_minutes": 30},
    {
        "name": "billing",
        "display_name": "Billing",
        "first_response_minutes": 15,
        "business_hours": {
            "timezone": "Europe/Berlin",
            **{day: "08:00-20:00" for day in WEEKDAYS},
            "saturday": "",
            "sunday": "",
        },
    },
    {"name": "escalation", "display_name": "Escalation"},
)
MINUTE = 60
# Each team's row of PERIOD at NOW (TEAMS): handoffs (count, total), first response (samples,
# p50 s, p90 s) in clock time and in the team's hours, within target (count, total; None: no
# target), human resolution time (samples, p50 s, p90 s), human CSAT (count, total).
TEAM_FIGURES: Mapping[str, Mapping[str, object]] = {
    "care": {
        "handoffs": (4, 7),
        "first_response": (2, 30 * MINUTE, 60 * MINUTE),
        "first_response_business": (2, 30 * MINUTE, 60 * MINUTE),
        "within_target": (1, 2),
        "resolution_time_human": (4, 30 * MINUTE, 13 * 60 * MINUTE),
        "csat_human": (1, 2),
    },
    "billing": {
        "handoffs": (3, 7),
        "first_response": (3, 20 * MINUTE, int(63.5 * 60) * MINUTE),
        "first_response_business": (3, 20 * MINUTE, 210 * MINUTE),
        "within_target": (1, 3),
        "resolution_time_human": (1, 60 * MINUTE, 60 * MINUTE),
        "csat_human": (0, 0),
    },
    "escalation": {
        "handoffs": (1, 7),
        "first_response": (1, (14 * 60 + 45) * MINUTE, (14 * 60 + 45) * MINUTE),
        "first_response_business": (1, 15 * MINUTE, 15 * MINUTE),
        "within_target": None,
        "resolution_time_human": (1, (16 * 60 + 30) * MINUTE, (16 * 60 + 30) * MINUTE),
        "csat_human": (0, 0),
    },
}
WITHIN_TARGET = (2, 5)  # met: helpful_no, two_handoffs (billing); of the 5 judged handoffs


def team_settings(tmp_path: Path) -> Settings:
    """The golden settings (SECTIONS) with TEAMS."""
    data: dict[str, object] = {**settings_data(tmp_path, **SECTIONS), "teams": list(TEAMS)}
    return Settings.model_validate(data)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of 2026, in UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Person:
    """A customer's identity on one channel (``profile`` may link it to others by phone)."""

    channel: str
    user: str
    profile: Mapping[str, str] = field(default_factory=dict)


def answer(intent: str, *reasons: Reason) -> Decision:
    return Decision(
        DecisionKind.ANSWER, reasons or (Reason.CONFIDENT,), intent, 0.9, 0.4, 0.1, reply="A."
    )


def handoff(*reasons: Reason, intent: str | None = None, emotion: float = 0.1) -> Decision:
    return Decision(
        DecisionKind.HANDOFF, reasons, intent, 0.5, 0.2, emotion, reply="A colleague follows."
    )


def draft(intent: str, reason: Reason) -> Decision:
    return Decision(
        DecisionKind.DRAFT, (reason,), intent, 0.6, 0.2, 0.1, reply="Checking.", draft="D."
    )


def clarify(reason: Reason, intent: str | None = None) -> Decision:
    return Decision(DecisionKind.CLARIFY, (reason,), intent, 0.5, 0.01, 0.1, reply="Which one?")


class Script:
    """Writes scripted conversations through the store, moving the fake clock to each step."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.conversations = ConversationStore(db, clock=clock)
        self.handoffs = HandoffStore(db, clock=clock)
        self.closing = ClosingStore(db, clock=clock)
        self._message_ids = itertools.count(1)

    def _at(self, when: datetime) -> None:
        self.clock.now = when

    async def says(
        self,
        who: Person,
        when: datetime,
        text: str,
        decision: Decision | None = None,
        *,
        small_talk: bool = False,
    ) -> Received:
        """A customer message, decided on (``decision``) or recorded for an agent (None)."""
        self._at(when)
        message = InboundMessage(
            who.channel, who.user, f"m{next(self._message_ids)}", text, when, who.profile
        )
        received = await self.conversations.receive(message)
        if decision is None:
            await self.conversations.mark_handled(received.message_id)
            return received
        await self.conversations.record_decision(received, decision, {"total": 5.0})
        if small_talk:
            await self._mark_small_talk(received.message_id)
        return received

    async def _mark_small_talk(self, message_id: int) -> None:
        """What the pipeline stores on the decisions of intents tagged as small talk."""
        async with self.db.transaction() as session:
            row = await session.scalar(
                select(DecisionRow).where(DecisionRow.inbound_message_id == message_id)
            )
            assert row is not None
            row.details = {**row.details, "small_talk": True}

    async def agent_replies(self, conversation_id: int, when: datetime, agent: str = "Ann") -> None:
        self._at(when)
        await self.handoffs.reply(conversation_id, agent, "Hi, this is a person.")

    async def take_over(self, conversation_id: int, when: datetime, agent: str = "Ann") -> None:
        self._at(when)
        await self.handoffs.take_over(conversation_id, agent)

    async def route(self, conversation_id: int, team: str) -> None:
        """Give the conversation's latest handoff a team, as routing does."""
        async with self.db.transaction() as session:
            latest = await session.scalar(
                select(Handoff)
                .where(Handoff.conversation_id == conversation_id)
                .order_by(Handoff.id.desc())
                .limit(1)
            )
            assert latest is not None
            latest.team = team

    async def resolve(self, conversation_id: int, when: datetime, agent: str = "Ann") -> None:
        self._at(when)
        await self.handoffs.resolve(conversation_id, agent)

    async def close_idle(self, conversation_id: int, when: datetime) -> None:
        self._at(when)
        assert await self.closing.close_idle([conversation_id], when) == [conversation_id]

    async def ask(
        self,
        conversation_id: int,
        kind: str,
        when: datetime,
        *,
        about: Received | None = None,
        resolver: str | None = None,
    ) -> int:
        """A survey sent: "did that answer?" (``helpful``, about the answer to ``about``) or a
        1-5 ``rating`` of the conversation (``resolver``: bot / human)."""
        async with self.db.transaction() as session:
            conversation = await session.get_one(Conversation, conversation_id)
            decision_id = None
            if about is not None:
                decision_id = await session.scalar(
                    select(DecisionRow.id).where(DecisionRow.inbound_message_id == about.message_id)
                )
            survey = Survey(
                conversation_id=conversation_id,
                identity_id=conversation.identity_id,
                kind=kind,
                decision_id=decision_id,
                resolver=resolver,
                asked_at=when,
            )
            session.add(survey)
            await session.flush()
            return survey.id

    async def answer(self, survey_id: int, who: Person, when: datetime, reply: str) -> Received:
        """The customer's reply to a survey: a message recorded without a decision (a survey
        reply is never triaged), and the survey's answer."""
        received = await self.says(who, when, reply)
        async with self.db.transaction() as session:
            await session.execute(
                update(Survey)
                .where(Survey.id == survey_id)
                .values(answer=reply, answered_at=when, answer_message_id=received.message_id)
            )
        return received


@dataclass
class Golden:
    """The scripted store: conversation ids by name (see the module docstring)."""

    ids: dict[str, int] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> int:
        return self.ids[name]

    def keep(self, name: str, received: Received) -> None:
        self.ids[name] = received.conversation_id
        self.customers[name] = received.customer_id


async def build_golden_store(db: Database, clock: Clock) -> Golden:
    """Fill ``db`` (migrated, empty) with the scripted conversations; leaves the clock at NOW."""
    script, golden = Script(db, clock), Golden()
    for part in (_first_week, _second_week, _the_edges):
        await part(script, golden)
    script._at(NOW)
    return golden


async def _first_week(s: Script, g: Golden) -> None:
    for part in (_before_window, _at_since, _helpful_no, _kim, _two_handoffs, _week_one_rest):
        await part(s, g)


async def _second_week(s: Script, g: Golden) -> None:
    for part in (_lea, _rated_after_close, _late_rating, _resolved_silently, _requests_after):
        await part(s, g)


async def _before_window(s: Script, g: Golden) -> None:
    bea = Person("webchat", "bea")
    first = await s.says(bea, at(11, 29, 22, 30), "where is my order", answer("order_status"))
    g.keep("before_window", first)
    await s.says(bea, at(11, 30, 9), "thanks", answer("thanks"), small_talk=True)
    rating = await s.ask(first.conversation_id, "rating", at(11, 30, 10), resolver="bot")
    await s.answer(rating, bea, at(11, 30, 10, 5), "3")


async def _at_since(s: Script, g: Golden) -> None:
    dan = Person("webchat", "dan")
    asked = await s.says(dan, SINCE, "how do I reset my password", answer("password_reset"))
    g.keep("at_since", asked)
    helpful = await s.ask(asked.conversation_id, "helpful", SINCE, about=asked)
    await s.answer(helpful, dan, at(11, 29, 23, 5), "yes")
    rating = await s.ask(asked.conversation_id, "rating", at(11, 29, 23, 6), resolver="bot")
    await s.answer(rating, dan, at(11, 29, 23, 10), "5")


async def _helpful_no(s: Script, g: Golden) -> None:
    eve = Person("webchat", "eve")
    asked = await s.says(eve, at(12, 1, 10), "can I change my address", answer("change_address"))
    g.keep("helpful_no", asked)
    cid = asked.conversation_id
    helpful = await s.ask(cid, "helpful", at(12, 1, 10), about=asked)
    await s.answer(helpful, eve, at(12, 1, 10, 2), "no")
    await s.says(eve, at(12, 1, 10, 5), "a person please", handoff(Reason.ASKED_FOR_HUMAN))
    await s.agent_replies(cid, at(12, 1, 10, 35))
    await s.resolve(cid, at(12, 1, 11))
    rating = await s.ask(cid, "rating", at(12, 1, 11), resolver="human")
    await s.answer(rating, eve, at(12, 1, 11, 30), "2")


async def _kim(s: Script, g: Golden) -> None:
    kim = Person("webchat", "kim")
    first = await s.says(kim, at(12, 2, 9), "hi", answer("greeting"), small_talk=True)
    g.keep("kim_first", first)
    await s.says(kim, at(12, 2, 9, 10), "where is my parcel", answer("order_status"))
    await s.close_idle(first.conversation_id, at(12, 3, 10))
    again = await s.says(kim, at(12, 5, 14), "hi again", answer("greeting"), small_talk=True)
    g.keep("kim_again", again)
    await s.says(kim, at(12, 5, 14, 2), "my parcel still has not come", answer("order_status"))


async def _two_handoffs(s: Script, g: Golden) -> None:
    fay = Person("telegram", "fay")
    sensitive = handoff(Reason.SENSITIVE_INTENT, intent="billing_dispute")
    first = await s.says(fay, at(12, 2, 16, 30), "I was charged twice", sensitive)
    g.keep("two_handoffs", first)
    cid = first.conversation_id
    await s.route(cid, "billing")
    await s.agent_replies(cid, at(12, 2, 16, 40))
    await s.resolve(cid, at(12, 2, 16, 50))
    upset = handoff(Reason.EMOTIONAL, Reason.NO_ANSWER, intent="damaged_item", emotion=0.9)
    await s.says(fay, at(12, 2, 17, 30), "my parcel came damaged, I am furious", upset)
    await s.route(cid, "escalation")
    await s.agent_replies(cid, at(12, 3, 8, 15), agent="Bob")
    await s.resolve(cid, at(12, 3, 9), agent="Bob")
    await s.ask(cid, "rating", at(12, 3, 9), resolver="human")  # never answered


async def _week_one_rest(s: Script, g: Golden) -> None:
    hal = Person("webchat", "hal")
    g.keep(
        "small_talk_only",
        await s.says(hal, at(12, 3, 12), "hi", answer("greeting"), small_talk=True),
    )
    await s.says(hal, at(12, 3, 12, 1), "thanks", answer("thanks"), small_talk=True)
    ned = Person("webchat", "ned")
    took = await s.says(ned, at(12, 3, 14), "do you ship to Norway", answer("shipping_countries"))
    g.keep("agent_took", took)
    await s.take_over(took.conversation_id, at(12, 3, 14, 10))
    await s.agent_replies(took.conversation_id, at(12, 3, 14, 12))
    await s.resolve(took.conversation_id, at(12, 3, 14, 20))
    gus = Person("webchat", "gus")
    friday = await s.says(gus, at(12, 4, 16, 50), "my contract", handoff(Reason.ASKED_FOR_HUMAN))
    g.keep("weekend", friday)
    await s.route(friday.conversation_id, "billing")
    await s.agent_replies(friday.conversation_id, at(12, 7, 8, 20), agent="Bob")


async def _lea(s: Script, g: Golden) -> None:
    phone = {"phone": "+4915112345678"}
    web, telegram = Person("webchat", "lea", phone), Person("telegram", "lea-tg", phone)
    asked = await s.says(web, at(12, 6, 23, 30), "where is my refund", answer("refund"))
    g.keep("lea_web", asked)
    helpful = await s.ask(asked.conversation_id, "helpful", at(12, 6, 23, 30), about=asked)
    await s.answer(helpful, web, at(12, 6, 23, 33), "yes")
    again = await s.says(
        telegram,
        at(12, 10, 15),
        "refund still missing",
        draft("refund_delay", Reason.BELOW_THRESHOLD),
    )
    g.keep("lea_telegram", again)
    await s.route(again.conversation_id, "billing")
    await s.agent_replies(again.conversation_id, at(12, 10, 15, 20), agent="Bob")
    await s.resolve(again.conversation_id, at(12, 10, 16), agent="Bob")


async def _rated_after_close(s: Script, g: Golden) -> None:
    ivy = Person("webchat", "ivy")
    unsure = clarify(Reason.AMBIGUOUS, intent="opening_hours")
    first = await s.says(ivy, at(12, 8, 10), "when are you open", unsure)
    g.keep("rated_after_close", first)
    await s.says(ivy, at(12, 8, 10, 1), "opening hours", answer("opening_hours", Reason.CLARIFIED))
    await s.close_idle(first.conversation_id, at(12, 9, 10))
    rating = await s.ask(first.conversation_id, "rating", at(12, 9, 10, 5), resolver="bot")
    g.keep("survey_only", await s.answer(rating, ivy, at(12, 9, 11), "4"))


async def _late_rating(s: Script, g: Golden) -> None:
    jay = Person("telegram", "jay")
    asked = await s.says(jay, at(12, 9, 9), "how do I return an item", answer("returns"))
    g.keep("late_rating", asked)
    rating = await s.ask(asked.conversation_id, "rating", at(12, 10, 9, 30), resolver="bot")
    await s.answer(rating, jay, at(12, 11, 10), "1")  # 24.5 hours after the question


async def _resolved_silently(s: Script, g: Golden) -> None:
    olga = Person("webchat", "olga")
    sensitive = handoff(Reason.SENSITIVE_INTENT, intent="cancel_subscription")
    asked = await s.says(olga, at(12, 9, 10), "cancel my subscription", sensitive)
    g.keep("resolved_silently", asked)
    await s.resolve(asked.conversation_id, at(12, 9, 10, 30))
    await s.agent_replies(asked.conversation_id, at(12, 9, 11))  # opens an agent's handoff


async def _requests_after(s: Script, g: Golden) -> None:
    """The bot answers at 10:00; the next request comes 23 or 25 hours later."""
    for name, user, hour in (("request_at_23h", "oli", 9), ("request_at_25h", "pia", 11)):
        who = Person("webchat", user)
        g.keep(name, await s.says(who, at(12, 10, 10), "shipping cost?", answer("shipping_cost")))
        await s.says(who, at(12, 11, hour), "and to Austria?", clarify(Reason.BELOW_THRESHOLD))


async def _the_edges(s: Script, g: Golden) -> None:
    """Answers 25 and 23 hours before NOW; a conversation across PERIOD.until; one at it."""
    for name, user, hour in (("answer_25h_ago", "rae", 11), ("answer_23h_ago", "quin", 13)):
        who = Person("webchat", user)
        g.keep(name, await s.says(who, at(12, 13, hour), "your phone number?", answer("contact")))
    carl = Person("telegram", "carl")
    first = await s.says(carl, at(12, 13, 22), "I want a refund", answer("refund"))
    g.keep("spans_end", first)
    cid = first.conversation_id
    upset = handoff(Reason.EMOTIONAL, intent="refund", emotion=0.9)
    await s.says(carl, at(12, 14, 9), "still no refund, this is ridiculous", upset)
    await s.route(cid, "care")
    await s.agent_replies(cid, at(12, 14, 10))
    await s.says(carl, at(12, 14, 10, 30), "ok thanks")  # recorded for the agent
    await s.resolve(cid, at(12, 14, 11))
    rating = await s.ask(cid, "rating", at(12, 14, 11), resolver="human")
    await s.answer(rating, carl, at(12, 14, 11, 5), "5")
    sam = Person("webchat", "sam")
    g.keep(
        "at_until", await s.says(sam, UNTIL, "a question about my order", answer("order_status"))
    )
