"""Unanswered messages grouped into topics (carebot.insight.topics), on made-up messages and the
fake encoder: clusters, keywords, the verdict near an intent or new, ranking, determinism. The
fake encoder's scores are cosine similarities (the matcher's ``nearest`` method), so the tests
use a near cutoff on that scale."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from carebot.insight.report import Period, Topic
from carebot.insight.topics import (
    DEFAULTS,
    Asked,
    Grouping,
    TopicSettings,
    assign,
    cluster,
    group,
    keywords,
)
from carebot.insight.unanswered import (
    find_topics,
    is_unanswered,
    unanswered_messages,
    unanswered_topics,
)
from carebot.models import Decision, DecisionKind, InboundMessage, Reason
from carebot.nlu.intents import Intent, IntentSet
from carebot.nlu.matcher import Matcher
from carebot.store.conversations import ConversationStore
from carebot.store.database import Database
from carebot.store.embeddings import MessageEmbeddingStore
from carebot.store.tables import Conversation, DecisionRow, Survey
from tests.conftest import Clock
from tests.fakes import FakeEncoder

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
SETTINGS = replace(DEFAULTS, near_cutoff=0.5)
PARCEL = [
    "where is my parcel delivery",
    "my parcel delivery is late",
    "parcel delivery tracking please",
    "when will my parcel delivery arrive",
]
KETTLE = [
    "refund for the broken kettle",
    "i want a refund for the broken kettle",
    "broken kettle refund please",
]
VOUCHER = [
    "can i pay with a gift card voucher",
    "gift card voucher not accepted",
    "gift card voucher balance",
]
ALONE = "do you sell garden furniture"
INTENTS = IntentSet(
    (
        Intent("delivery_status", ("where is my parcel", "track my parcel delivery"), answer="a"),
        Intent("refund", ("i want a refund", "refund for a broken item"), answer="b"),
    )
)


def asked(texts: list[str], *, first_id: int = 1, age: timedelta = timedelta()) -> list[Asked]:
    """One message per text, each from its own customer, ``age`` before NOW."""
    return [
        Asked(first_id + i, 100 + first_id + i, 1000 + first_id + i, text, NOW - age)
        for i, text in enumerate(texts)
    ]


def grouped(messages: list[Asked], settings: TopicSettings = SETTINGS) -> Grouping:
    encoder = FakeEncoder()
    vectors = encoder.encode([m.text for m in messages])
    matcher = Matcher(encoder=encoder, intents=INTENTS, method="nearest")
    ids = [intent.id for intent in INTENTS.intents]
    return group(messages, vectors, matcher.scores(vectors), ids, now=NOW, settings=settings)


def by_verdict(grouping: Grouping) -> dict[str | None, Topic]:
    return {topic.near_intent: topic for topic in grouping.topics}


def test_messages_about_one_thing_form_a_topic_with_its_verdict() -> None:
    messages = asked(PARCEL + KETTLE + VOUCHER + [ALONE])
    grouping = grouped(messages)
    topics = by_verdict(grouping)
    assert set(topics) == {"delivery_status", "refund", None}
    parcel, kettle, voucher = topics["delivery_status"], topics["refund"], topics[None]
    assert parcel.message_ids == (1, 2, 3, 4)
    assert kettle.message_ids == (5, 6, 7)
    assert voucher.message_ids == (8, 9, 10)
    assert parcel.near_score is not None and parcel.near_score >= 0.5
    assert voucher.near_score is None  # new: no intent covers gift card vouchers
    # Alone and near no intent: in no topic.
    assert grouping.topic_of[10] is None and grouping.loose == 1
    assert (parcel.customers, parcel.conversation_ids) == (4, (101, 102, 103, 104))
    assert parcel.last_seen == NOW


def test_keywords_are_the_words_that_tell_a_topic_apart() -> None:
    topics = by_verdict(grouped(asked(PARCEL + KETTLE + VOUCHER)))
    assert set(topics["delivery_status"].keywords[:2]) == {"parcel", "delivery"}
    assert set(topics["refund"].keywords[:3]) == {"broken", "kettle", "refund"}
    assert set(topics[None].keywords[:3]) == {"card", "gift", "voucher"}
    for topic in topics.values():
        assert not {"my", "the", "i", "a", "is", "for"} & set(topic.keywords)  # stop words


def test_c_tf_idf_ranks_a_word_every_topic_shares_below_its_own_words() -> None:
    found = keywords(
        [
            ["order parcel late", "order parcel missing"],
            ["order kettle broken", "order kettle refund", "order kettle 2024"],
        ],
        count=3,
    )
    assert found[0] == ("parcel", "late", "missing")  # "order" is everywhere; ties: a-z
    assert found[1][0] == "kettle"
    assert "order" not in found[0] + found[1][:1]
    assert keywords([["the a an", "is it"]]) == [()]  # nothing but stop words
    # scikit-learn's list has "bill" and "amount": here they are what a customer asks about
    assert keywords([["my bill is wrong", "the bill amount is too high"]]) == [
        ("bill", "amount", "high", "wrong")
    ]
    assert keywords([]) == []


def test_examples_are_three_different_messages_nearest_the_middle() -> None:
    texts = [*PARCEL, "Where is my parcel delivery ", "WHERE IS MY PARCEL DELIVERY"]
    (topic,) = grouped(asked(texts)).topics
    assert len(topic.examples) == 3
    assert len({e.strip().casefold() for e in topic.examples}) == 3
    assert topic.examples[0].strip().casefold() == "where is my parcel delivery"
    assert topic.messages == 6 and topic.customers == 6


def test_a_bigger_topic_comes_first_and_so_does_a_recent_one() -> None:
    kettle = asked(KETTLE, first_id=1)
    voucher = asked([*VOUCHER, "gift card voucher expired"], first_id=10)
    ranked = grouped(kettle + voucher).topics
    assert [t.near_intent for t in ranked] == [None, "refund"]  # 4 messages before 3
    # The same 4 messages a month ago weigh less than 3 asked today (half-life a week).
    old = asked([*VOUCHER, "gift card voucher expired"], first_id=10, age=timedelta(days=30))
    ranked = grouped(kettle + old).topics
    assert [t.near_intent for t in ranked] == ["refund", None]
    assert ranked[1].last_seen == NOW - timedelta(days=30)
    # Equal weight and size: the one asked last first.
    recent = asked(VOUCHER, first_id=10)
    earlier = [replace(m, at=NOW - timedelta(seconds=1)) for m in kettle]
    older_kettle = grouped(earlier + recent).topics
    assert older_kettle[0].near_intent is None


def test_the_same_messages_in_any_order_give_the_same_topics() -> None:
    messages = asked(PARCEL + KETTLE + VOUCHER + [ALONE])
    first = grouped(messages)
    shuffled = messages[:]
    random.Random(3).shuffle(shuffled)
    again = grouped(shuffled)
    assert again.topics == first.topics
    for message, place in zip(shuffled, again.topic_of, strict=True):
        assert place == first.topic_of[messages.index(message)]


@pytest.mark.parametrize(
    ("clusters", "scores", "expected"),
    [
        # a cluster near intent 0; its message whose own best is intent 1 goes there
        ([0, 0, 0], [[0.9, 0.1], [0.8, 0.2], [0.1, 0.7]], [("near", 0), ("near", 0), ("near", 1)]),
        # ... unless it scores under the cutoff for it: it stays with the cluster's intent
        ([0, 0, 0], [[0.9, 0.1], [0.8, 0.2], [0.1, 0.3]], [("near", 0)] * 3),
        # a cluster whose median score for its most common best intent is under the cutoff
        ([0, 0, 0], [[0.6, 0.0], [0.3, 0.0], [0.2, 0.0]], [("new", 0)] * 3),
        # alone: near its best intent if it scores enough, else in no topic
        ([0, 1], [[0.2, 0.55], [0.4, 0.1]], [("near", 1), None]),
        # a tie of most common best intents goes to the higher median score (intent 1's here)
        ([0, 0, 0, 0], [[0.45, 0.3], [0.4, 0.3], [0.1, 0.9], [0.1, 0.8]], [("near", 1)] * 4),
    ],
)  # fmt: skip
def test_where_each_message_goes(
    clusters: list[int], scores: list[list[float]], expected: list[tuple[str, int] | None]
) -> None:
    assert assign(np.array(clusters), np.array(scores), SETTINGS) == expected


def test_a_cluster_smaller_than_min_messages_is_judged_message_by_message() -> None:
    settings = replace(SETTINGS, min_messages=3)
    scores = np.array([[0.9, 0.0], [0.1, 0.0]])
    assert assign(np.array([0, 0]), scores, settings) == [("near", 0), None]


def test_without_intents_every_cluster_is_new() -> None:
    messages = asked([*PARCEL, ALONE])
    vectors = FakeEncoder().encode([m.text for m in messages])
    grouping = group(messages, vectors, np.zeros((5, 0)), [], now=NOW)
    assert [t.near_intent for t in grouping.topics] == [None]
    assert grouping.topics[0].message_ids == (1, 2, 3, 4) and grouping.loose == 1


def test_no_messages_no_topics() -> None:
    grouping = group([], np.zeros((0, 0)), np.zeros((0, 2)), ["a", "b"], now=NOW)
    assert grouping == Grouping((), ())


def test_many_messages_are_clustered_by_hdbscan_after_pca() -> None:
    themes = {
        "parcel delivery": ["where is my", "late", "tracking for my", "when will my", "lost"],
        "broken kettle refund": ["please", "i want a", "how do i get a", "asap", "for my"],
        "gift card voucher": ["pay with a", "not accepted", "balance of my", "expired", "buy a"],
    }
    texts = [f"{extra} {core}" for core, extras in themes.items() for extra in extras]
    for extra in ("status of my", "missing", "delayed"):
        texts += [f"{extra} parcel delivery"]
    texts.append(ALONE)
    vectors = FakeEncoder().encode(texts)
    settings = replace(SETTINGS, max_agglomerative=10, hdbscan_min_cluster=5, hdbscan_min_samples=3)
    labels = cluster(vectors, settings)
    theme_of = [next(c for c in themes if c in t) if t != ALONE else None for t in texts]
    for theme in themes:
        assert len({labels[i] for i, t in enumerate(theme_of) if t == theme}) == 1, theme
    assert len(set(labels)) == 4  # the three themes, and the lone message on its own
    assert cluster(vectors, settings).tolist() == labels.tolist()  # deterministic


def test_the_inputs_must_line_up() -> None:
    messages = asked(PARCEL)
    with pytest.raises(ValueError, match="one row per message"):
        group(messages, np.zeros((3, 4)), np.zeros((4, 1)), ["x"], now=NOW)
    with pytest.raises(ValueError, match="one column per intent"):
        group(messages, np.zeros((4, 4)), np.zeros((4, 2)), ["x"], now=NOW)


# ---- the period's unanswered messages, read from the store (SQLite and PostgreSQL)


@pytest.mark.parametrize(
    ("kind", "reasons", "small_talk", "unanswered"),
    [
        ("clarify", ["below_threshold"], False, True),  # asked to rephrase
        ("clarify", ["ambiguous"], False, False),  # "did you mean A or B?"
        ("clarify", ["ambiguous", "below_threshold"], False, True),
        ("draft", ["below_threshold"], False, True),
        ("handoff", ["no_answer"], False, True),
        ("handoff", ["repeated_failure", "below_threshold"], False, True),
        ("handoff", ["emotional"], False, False),
        ("handoff", ["asked_for_human"], False, False),
        ("answer", ["confident"], False, False),
        ("clarify", ["below_threshold"], True, False),  # small talk
    ],
)
def test_which_decisions_leave_a_message_unanswered(
    kind: str, reasons: list[str], small_talk: bool, unanswered: bool
) -> None:
    details = {"small_talk": True} if small_talk else {}
    assert is_unanswered(kind, reasons, details) is unanswered


DECIDED = {
    "where is my parcel delivery": (DecisionKind.CLARIFY, (Reason.BELOW_THRESHOLD,)),
    "my parcel delivery is late": (DecisionKind.DRAFT, (Reason.BELOW_THRESHOLD,)),
    "parcel delivery tracking please": (DecisionKind.HANDOFF, (Reason.NO_ANSWER,)),
    "refund for the broken kettle": (DecisionKind.ANSWER, (Reason.CONFIDENT,)),  # then "no"
    "hello there": (DecisionKind.CLARIFY, (Reason.BELOW_THRESHOLD,)),  # small talk
    "i want a refund": (DecisionKind.ANSWER, (Reason.CONFIDENT,)),
}


class Scripted:
    """A store with the DECIDED messages (and one more on the web channel, and one in a
    conversation that started before the period), as the pipeline leaves them."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.conversations = ConversationStore(db, clock=clock)
        self.ids: dict[str, int] = {}

    async def decide(
        self, text: str, kind: DecisionKind, reasons: tuple[Reason, ...], **kw: str
    ) -> int:
        received = await self.conversations.receive(
            InboundMessage(
                kw.get("channel", "test"), kw.get("user", text), f"m-{text}", text, self.clock.now
            )
        )
        decision = Decision(kind, reasons, "refund" if "refund" in text else None, 0.3, 0.1, 0.0)
        await self.conversations.record_decision(received, decision, {})
        self.ids[text] = received.message_id
        return received.message_id

    async def fill(self) -> Period:
        await self.decide("parcel delivery lost", DecisionKind.CLARIFY, (Reason.BELOW_THRESHOLD,))
        self.clock.advance(86400)
        since = self.clock.now
        for text, (kind, reasons) in DECIDED.items():
            await self.decide(text, kind, reasons)
        await self.decide(
            "parcel delivery help", DecisionKind.DRAFT, (Reason.BELOW_THRESHOLD,), channel="web"
        )
        async with self.db.transaction() as session:
            hello = await session.scalar(
                select(DecisionRow).where(DecisionRow.inbound_message_id == self.ids["hello there"])
            )
            assert hello is not None
            hello.details = {**hello.details, "small_talk": True}
            kettle = await session.scalar(
                select(DecisionRow).where(
                    DecisionRow.inbound_message_id == self.ids["refund for the broken kettle"]
                )
            )
            assert kettle is not None
            conversation = await session.get_one(Conversation, kettle.conversation_id)
            session.add(
                Survey(
                    conversation_id=conversation.id,
                    identity_id=conversation.identity_id,
                    kind="helpful",
                    decision_id=kettle.id,
                    asked_at=self.clock.now,
                    answer="no",
                    answered_at=self.clock.now,
                )
            )
        return Period(since, since + timedelta(days=7))


EXPECTED = [
    "where is my parcel delivery",
    "my parcel delivery is late",
    "parcel delivery tracking please",
    "refund for the broken kettle",
    "parcel delivery help",
]


async def test_the_periods_unanswered_messages_are_read_from_the_store(
    database: Database, clock: Clock
) -> None:
    script = Scripted(database, clock)
    period = await script.fill()
    found = await unanswered_messages(database, period)
    assert [a.text for a in found] == EXPECTED
    assert [a.message_id for a in found] == [script.ids[t] for t in EXPECTED]
    on_test = await unanswered_messages(database, replace(period, channel="test"))
    assert [a.text for a in on_test] == EXPECTED[:-1]
    later = await unanswered_messages(
        database, Period(period.until, period.until + timedelta(days=1))
    )
    assert later == []


async def test_topics_use_the_stored_embeddings_and_encode_what_the_live_model_has_not(
    database: Database, clock: Clock
) -> None:
    script = Scripted(database, clock)
    period = await script.fill()
    encoder = FakeEncoder()
    store = MessageEmbeddingStore(database)
    # As the pipeline stored them: two by the live model, one by the model before, none for two.
    stored = ["where is my parcel delivery", "refund for the broken kettle"]
    await store.save([(script.ids[t], encoder.encode([t])[0]) for t in stored], encoder.model_id)
    old = "my parcel delivery is late"
    await store.save([(script.ids[old], np.ones(8, dtype=np.float32))], "model-before")
    matcher = Matcher(encoder=encoder, intents=INTENTS, method="nearest")
    encoder.calls.clear()

    skipped = await find_topics(
        db=database, matcher=matcher, period=period, now=clock.now, settings=SETTINGS
    )
    assert (skipped.messages, skipped.skipped, skipped.encoded) == (2, 3, 0)
    assert encoder.calls == []

    async def encode(texts: list[str]) -> np.ndarray:
        return encoder.encode(texts)

    found = await find_topics(
        db=database, matcher=matcher, period=period, now=clock.now, encode=encode, settings=SETTINGS
    )
    assert (found.messages, found.skipped, found.encoded) == (5, 0, 3)
    parcel = [script.ids[t] for t in EXPECTED if "parcel" in t]
    topics = by_verdict(found.grouping)
    assert topics["delivery_status"].message_ids == tuple(parcel)
    assert topics["refund"].message_ids == (script.ids["refund for the broken kettle"],)
    # What was encoded is kept: the next time nothing is.
    again = await unanswered_topics(
        db=database, matcher=matcher, period=period, now=clock.now, encode=encode, settings=SETTINGS
    )
    assert again == found.topics
    assert sum(encoder.calls) == 3
