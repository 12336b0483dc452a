"""The proposal queue (the store) and the proposals made from an agent's reply or an unanswered
topic: the question taken from the conversation as stored, the intent it goes to or the new
intent's id, and the flags for personal data and for examples near another intent."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest

from carebot.config import Settings
from carebot.console.proposals import TOPIC_EXAMPLES, ProposalMaker
from carebot.exceptions import StoreError
from carebot.insight.report import Topic
from carebot.models import Decision, InboundMessage, Reason
from carebot.nlu.personal_data import find_personal_data
from carebot.store.conversations import ConversationStore
from carebot.store.database import Database
from carebot.store.handoffs import HandoffStore
from carebot.store.intent_history import Action, RevisionStore
from carebot.store.proposals import (
    Draft,
    Flag,
    Proposal,
    ProposalKind,
    ProposalStore,
    Source,
    Status,
)
from tests.conftest import Clock, make_settings
from tests.insight_fixture import answer, clarify, handoff
from tests.test_triage import build

ORDER = "my order has not arrived yet where is it"  # near order_status (similarity 0.67)
GIFT_WRAP = "do you sell gift wrapping for birthdays"  # near no intent
GIFT_REPLY = "Yes, gift wrapping costs 3 euros."
NEAR_REFUNDS = "refund money back for the shoes i bought yesterday"  # 0.58 to refunds
_ids = itertools.count(1)


class Chat:
    """One customer's conversation, written through the real stores on the test's clock."""

    def __init__(self, db: Database, clock: Clock, *, user: str = "u1", name: str = "") -> None:
        self.clock = clock
        self.conversations = ConversationStore(db, clock=clock)
        self.handoffs = HandoffStore(db, clock=clock)
        self.user = user
        self.name = name
        self.conversation_id = 0

    async def customer(
        self, text: str, *, bot: bool = False, decided: Decision | None = None
    ) -> int:
        """The customer's message (answered by the bot with "A." when ``bot``, or decided as
        ``decided``); its id."""
        self.clock.advance(30)
        profile = {"name": self.name} if self.name else {}
        received = await self.conversations.receive(
            InboundMessage("test", self.user, f"m{next(_ids)}", text, self.clock.now, profile)
        )
        self.conversation_id = received.conversation_id
        if bot or decided is not None:
            queued = await self.conversations.record_decision(
                received, decided or answer("order_status"), {"total": 5.0}
            )
            assert queued is not None
            self.bot_message = queued.message_id
        else:
            await self.conversations.mark_handled(received.message_id)
        return received.message_id

    async def agent(self, text: str, agent: str = "Ben") -> int:
        """The agent's reply; its message's id."""
        self.clock.advance(30)
        sent = await self.handoffs.reply(self.conversation_id, agent, text)
        return sent[-1].message_id


@pytest.fixture
def store(database: Database, clock: Clock) -> ProposalStore:
    return ProposalStore(database, clock=clock)


def maker_for(store: ProposalStore, settings: Settings) -> ProposalMaker:
    return ProposalMaker(
        store=store, triage=build(settings), settings=settings, in_model_thread=asyncio.to_thread
    )


@pytest.fixture
def maker(store: ProposalStore, settings: Settings) -> ProposalMaker:
    return maker_for(store, settings)


def draft(intent_id: str = "refunds", **fields: object) -> Draft:
    values: dict[str, object] = {
        "kind": ProposalKind.ADD_EXAMPLES,
        "intent_id": intent_id,
        "examples": ("refund please",),
        "source": Source.AGENT,
        "author": "ann",
        **fields,
    }
    return Draft(**values)  # type: ignore[arg-type]


def flagged(proposal: Proposal) -> set[tuple[str, str, str]]:
    return {(f.field, f.kind, f.text) for f in proposal.flags}


# --- the store ---------------------------------------------------------------------------


async def test_a_proposal_reads_back_as_queued(
    store: ProposalStore, database: Database, clock: Clock
) -> None:
    chat = Chat(database, clock)
    message = await chat.customer("gift wrap?")
    flag = Flag("example", "order", "#48213", "'#48213' looks like an order number")

    added = await store.add(
        Draft(
            kind=ProposalKind.NEW_INTENT,
            intent_id="gift_wrap",
            title="Gift wrap",
            examples=("gift wrap?", "do you wrap gifts"),
            answer="We wrap.",
            source=Source.AGENT_REPLY,
            author="ann",
            conversation_id=chat.conversation_id,
            message_ids=(message,),
            flags=(flag,),
        )
    )

    assert added == await store.get(added.id)
    assert (added.kind, added.intent_id, added.title, added.answer) == (
        ProposalKind.NEW_INTENT,
        "gift_wrap",
        "Gift wrap",
        "We wrap.",
    )
    assert (added.examples, added.message_ids, added.flags) == (
        ("gift wrap?", "do you wrap gifts"),
        (message,),
        (flag,),
    )
    assert (added.source, added.author, added.conversation_id) == (
        Source.AGENT_REPLY,
        "ann",
        chat.conversation_id,
    )
    assert (added.status, added.created_at, added.decided_by, added.decided_at) == (
        Status.OPEN,
        clock.now,
        None,
        None,
    )
    assert (added.revision_id, added.note) == (None, None)


async def test_adding_no_examples_to_an_intent_is_refused(store: ProposalStore) -> None:
    with pytest.raises(StoreError, match="needs at least one example"):
        await store.add(draft(examples=()))
    assert await store.waiting() == []


async def test_an_unknown_proposal_is_refused_by_its_id(store: ProposalStore) -> None:
    with pytest.raises(StoreError, match="No proposal 99"):
        await store.get(99)
    with pytest.raises(StoreError, match="No proposal 99"):
        await store.reject(99, by="ann")


async def test_the_queue_is_oldest_first_and_the_decided_newest_decision_first(
    store: ProposalStore, database: Database, clock: Clock
) -> None:
    first, second, third = [await store.add(draft(f"intent_{n}")) for n in range(3)]
    revision = await RevisionStore(database, clock=clock).record(
        file="shop.yaml", action=Action.EDIT, author="ann", before="", after="x", intent_id="a"
    )
    assert [p.id for p in await store.waiting()] == [first.id, second.id, third.id]

    clock.advance(60)
    rejected = await store.reject(second.id, by="bob", note="  too vague \n")
    clock.advance(60)
    published = await store.publish(first.id, by="ann", revision_id=revision.id)

    assert [p.id for p in await store.waiting()] == [third.id]
    assert [p.id for p in await store.decided()] == [first.id, second.id]
    assert [p.id for p in await store.decided(limit=1)] == [first.id]
    assert (published.status, published.decided_by, published.revision_id, published.note) == (
        Status.PUBLISHED,
        "ann",
        revision.id,
        None,
    )
    assert published.decided_at == clock.now
    assert (rejected.status, rejected.decided_by, rejected.revision_id, rejected.note) == (
        Status.REJECTED,
        "bob",
        None,
        "too vague",
    )
    assert (await store.reject(third.id, by="bob", note=" ")).note is None


@pytest.mark.parametrize("first", ["publish", "reject"])
@pytest.mark.parametrize("second", ["publish", "reject"])
async def test_a_decided_proposal_cannot_be_decided_again(
    store: ProposalStore, database: Database, clock: Clock, first: str, second: str
) -> None:
    revision = await RevisionStore(database, clock=clock).record(
        file="shop.yaml", action=Action.EDIT, author="ann", before="", after="x", intent_id="a"
    )

    async def decide(how: str, proposal_id: int, by: str) -> Proposal:
        if how == "publish":
            return await store.publish(proposal_id, by=by, revision_id=revision.id)
        return await store.reject(proposal_id, by=by, note=f"no, says {by}")

    proposal = await store.add(draft())
    decided = await decide(first, proposal.id, "ann")
    clock.advance(60)

    with pytest.raises(StoreError) as refused:
        await decide(second, proposal.id, "bob")

    done = "published" if first == "publish" else "rejected"
    assert str(refused.value) == f"Proposal {proposal.id} was already {done} by ann"
    assert await store.get(proposal.id) == decided


async def test_of_conversation_is_its_proposals_newest_first(
    store: ProposalStore, database: Database, clock: Clock
) -> None:
    one, two = Chat(database, clock, user="u1"), Chat(database, clock, user="u2")
    await one.customer("hello")
    await two.customer("hello")
    older = await store.add(draft(conversation_id=one.conversation_id))
    await store.add(draft(conversation_id=two.conversation_id))
    await store.add(draft())
    newer = await store.add(draft(conversation_id=one.conversation_id))

    assert [p.id for p in await store.of_conversation(one.conversation_id)] == [newer.id, older.id]
    assert await store.of_conversation(one.conversation_id + 100) == []


# Conversations as steps: ("c", text) the customer, ("c+bot", text) the customer answered by
# the bot, ("a", text) an agent, ("other", text) another customer elsewhere. The last step is
# the agent's reply; ``question`` the customer's messages it answers.
SCRIPTS = {
    "since the bot answered": (
        [("c+bot", "hello"), ("c", "q1"), ("c", "q2"), ("a", "reply")],
        ["q1", "q2"],
    ),
    "since an agent wrote": (
        [("c", "q0"), ("a", "first"), ("c", "q1"), ("a", "reply")],
        ["q1"],
    ),
    "the bot's own reply to the question skipped": (
        [("c", "q0"), ("c+bot", "q1"), ("a", "reply")],
        ["q0", "q1"],
    ),
    "the agent's second reply answers the same question": (
        [("c+bot", "hi"), ("c", "q1"), ("a", "checking"), ("a", "reply")],
        ["q1"],
    ),
    "another conversation in between": (
        [("c+bot", "hi"), ("c", "q1"), ("other", "elsewhere"), ("c", "q2"), ("a", "reply")],
        ["q1", "q2"],
    ),
    "the last three when nobody wrote before": (
        [("c", "q1"), ("c", "q2"), ("c", "q3"), ("c", "q4"), ("a", "reply")],
        ["q2", "q3", "q4"],
    ),
    "asking for a person is no question": (
        [("c+bot", "hi"), ("c+clarify", "q1"), ("c+human", "a person please"), ("a", "reply")],
        ["q1"],
    ),
    "what the bot handed over for was said to already": (
        [("c+upset", "q0"), ("c", "q1"), ("a", "reply")],
        ["q1"],
    ),
    "a rephrasing after 'say it in other words'": (
        [("c+clarify", "q0"), ("c", "q1"), ("a", "reply")],
        ["q1"],
    ),
    "small talk is no question": (
        [("c+bot", "q0"), ("c+clarify", "q1"), ("c+smalltalk", "thanks!"), ("a", "reply")],
        ["q1"],
    ),
}
DECIDED = {
    "c+clarify": clarify(Reason.BELOW_THRESHOLD),
    "c+human": handoff(Reason.ASKED_FOR_HUMAN),
    "c+upset": handoff(Reason.EMOTIONAL),
    "c+smalltalk": dataclasses.replace(answer("thanks"), small_talk=True),
}


async def play(
    database: Database, clock: Clock, steps: Sequence[tuple[str, str]], *, name: str = ""
) -> tuple[Chat, dict[str, int]]:
    """The steps written to the store; the chat and each text's message id."""
    chat = Chat(database, clock, name=name)
    other = Chat(database, clock, user="someone-else")
    ids: dict[str, int] = {}
    for who, text in steps:
        if who == "a":
            ids[text] = await chat.agent(text)
        elif who == "other":
            ids[text] = await other.customer(text)
        else:
            ids[text] = await chat.customer(text, bot=who == "c+bot", decided=DECIDED.get(who))
    return chat, ids


@pytest.mark.parametrize(("steps", "question"), SCRIPTS.values(), ids=SCRIPTS)
async def test_reply_context_is_the_question_the_reply_answers(
    store: ProposalStore,
    database: Database,
    clock: Clock,
    steps: list[tuple[str, str]],
    question: list[str],
) -> None:
    chat, ids = await play(database, clock, steps, name="Anna Schmidt")

    context = await store.reply_context(ids["reply"])

    assert [(s.id, s.text) for s in context.question] == [(ids[q], q) for q in question]
    assert {s.conversation_id for s in context.question} == {chat.conversation_id}
    assert (context.reply.id, context.reply.text) == (ids["reply"], "reply")
    assert (context.customer_name, context.agent_name) == ("Anna Schmidt", "Ben")


@pytest.mark.parametrize(
    ("which", "error"),
    [
        ("customer", "is not an agent's reply (it is the customer's)"),
        ("bot", "is not an agent's reply (it is the bot's)"),
        ("missing", "No message"),
    ],
)
async def test_reply_context_refuses_what_is_not_an_agents_reply(
    store: ProposalStore, database: Database, clock: Clock, which: str, error: str
) -> None:
    chat, ids = await play(database, clock, [("c+bot", "hello"), ("a", "reply")])
    message = {"customer": ids["hello"], "bot": chat.bot_message, "missing": ids["reply"] + 9}

    with pytest.raises(StoreError) as refused:
        await store.reply_context(message[which])

    assert f"{message[which]}" in str(refused.value)
    assert error in str(refused.value)


# --- proposals from an agent's reply -------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "kind", "intent_id", "title", "answer"),
    [
        (ORDER, ProposalKind.ADD_EXAMPLES, "order_status", "Order status", ""),
        (
            GIFT_WRAP,
            ProposalKind.NEW_INTENT,
            "sell_gift_wrapping_birthdays",
            GIFT_WRAP,
            GIFT_REPLY,
        ),
        ("Refunds?", ProposalKind.NEW_INTENT, "refunds_2", "Refunds?", GIFT_REPLY),  # id taken
    ],
    ids=["near an intent", "a new intent", "a new intent whose id is taken"],
)
async def test_a_reply_proposes_examples_of_the_intent_it_is_near_or_a_new_intent(
    maker: ProposalMaker,
    store: ProposalStore,
    database: Database,
    clock: Clock,
    question: str,
    kind: ProposalKind,
    intent_id: str,
    title: str,
    answer: str,
) -> None:
    chat, ids = await play(database, clock, [("c+bot", "hi"), ("c", question), ("a", GIFT_REPLY)])

    proposal = await maker.from_reply(ids[GIFT_REPLY], author="ann")

    assert (proposal.kind, proposal.intent_id, proposal.title, proposal.answer) == (
        kind,
        intent_id,
        title,
        answer,
    )
    assert (proposal.examples, proposal.source, proposal.author, proposal.status) == (
        (question,),
        Source.AGENT_REPLY,
        "ann",
        Status.OPEN,
    )
    assert (proposal.conversation_id, proposal.message_ids) == (
        chat.conversation_id,
        (ids[question], ids[GIFT_REPLY]),
    )
    assert proposal.flags == ()
    assert await store.waiting() == [proposal]


@pytest.mark.parametrize(("above", "kind"), [(0.0, "add_examples"), (1e-6, "new_intent")])
async def test_the_draft_threshold_is_where_a_question_becomes_an_example(
    store: ProposalStore, database: Database, clock: Clock, tmp_path: Path, above: float, kind: str
) -> None:
    score = build(make_settings(tmp_path)).matcher.match(ORDER).score
    settings = make_settings(tmp_path, matcher={"draft_threshold": score + above})
    _, ids = await play(database, clock, [("c", ORDER), ("a", "It is on its way.")])

    proposal = await maker_for(store, settings).from_reply(ids["It is on its way."], author="ann")

    assert proposal.kind == kind


async def test_the_question_is_the_last_three_messages_joined(
    maker: ProposalMaker, database: Database, clock: Clock
) -> None:
    steps = [
        ("c", "hello"),
        ("c", "gift  wrap\n"),
        ("c", " for my"),
        ("c", "birthday?"),
        ("a", "r"),
    ]
    _, ids = await play(database, clock, steps)

    proposal = await maker.from_reply(ids["r"], author="ann")

    assert proposal.examples == ("gift wrap for my birthday?",)
    assert proposal.intent_id == "gift_wrap_birthday"
    assert proposal.message_ids == (ids["gift  wrap\n"], ids[" for my"], ids["birthday?"], ids["r"])


@pytest.mark.parametrize(
    ("question", "reply", "expected"),
    [
        (
            "did you ship order #48213 to my new flat",
            "Yes, order #48213 left today.",
            {("example", "order", "#48213"), ("answer", "order", "#48213")},
        ),
        (
            "change my email for invoices to anna.schmidt@example.com",
            "Done, invoices now go to anna.schmidt@example.com.",
            {
                ("example", "email", "anna.schmidt@example.com"),
                ("answer", "email", "anna.schmidt@example.com"),
            },
        ),
        (
            "this is Anna Schmidt asking about gift vouchers",
            "Hi Anna, gift vouchers are sold online. Ben",
            {
                ("example", "name", "Anna Schmidt"),
                ("answer", "name", "Anna"),
                ("answer", "name", "Ben"),
            },
        ),
    ],
    ids=["order number", "e-mail", "the customer's and the agent's names"],
)
async def test_personal_data_in_question_and_reply_is_flagged_and_kept_out_of_id_and_title(
    maker: ProposalMaker,
    database: Database,
    clock: Clock,
    question: str,
    reply: str,
    expected: set[tuple[str, str, str]],
) -> None:
    _, ids = await play(database, clock, [("c", question), ("a", reply)], name="Anna Schmidt")

    proposal = await maker.from_reply(ids[reply], author="ann")

    assert proposal.kind is ProposalKind.NEW_INTENT
    assert flagged(proposal) == expected
    assert all("before publishing" in f.message for f in proposal.flags)
    assert (proposal.examples, proposal.answer) == ((question,), reply)  # flagged, not changed
    for _, _, text in expected:
        for word in text.casefold().replace("@", " ").replace(".", " ").strip("#").split():
            assert word not in proposal.intent_id.split("_")
    known = ("Anna Schmidt", "Ben")
    assert find_personal_data(proposal.title, known_names=known) == []
    assert proposal.intent_id.isidentifier()


async def test_a_new_intent_like_another_intent_is_flagged_near_it(
    store: ProposalStore, database: Database, clock: Clock, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, matcher={"draft_threshold": 0.6})
    similarity = build(settings).matcher.match(NEAR_REFUNDS).score  # nearest: the similarity
    assert 0.5 <= similarity < 0.6  # near (min_similarity 0.5), yet below the draft threshold
    _, ids = await play(database, clock, [("c", NEAR_REFUNDS), ("a", "Sent today.")])

    proposal = await maker_for(store, settings).from_reply(ids["Sent today."], author="ann")

    assert proposal.kind is ProposalKind.NEW_INTENT
    assert flagged(proposal) == {("example", "near_intent", NEAR_REFUNDS)}
    assert f"scores near the intent 'refunds' (similarity {similarity:.2f})" in (
        proposal.flags[0].message
    )


async def test_an_example_as_near_another_intent_is_flagged(
    maker: ProposalMaker, database: Database, clock: Clock
) -> None:
    """ "return item label" scores alike for returns and returns_label."""
    _, ids = await play(database, clock, [("c", "return item label"), ("a", "Here it is.")])

    proposal = await maker.from_reply(ids["Here it is."], author="ann")

    assert (proposal.kind, proposal.intent_id) == (ProposalKind.ADD_EXAMPLES, "returns")
    assert flagged(proposal) == {("example", "near_intent", "return item label")}
    assert "'returns_label'" in proposal.flags[0].message


# --- proposals from an unanswered topic ----------------------------------------------------


def topic(
    keywords: Sequence[str] = ("gift", "wrapping", "birthday"),
    near: str | None = None,
    message_ids: Sequence[int] = (4, 8),
) -> Topic:
    return Topic(
        keywords=tuple(keywords),
        examples=(),
        messages=len(message_ids),
        customers=1,
        last_seen=Clock().now,
        near_intent=near,
        near_score=None if near is None else 0.4,
        message_ids=tuple(message_ids),
    )


async def test_a_topics_messages_are_proposed_once_each(maker: ProposalMaker) -> None:
    texts = ["Gift wrap?", "gift  wrap", " GIFT WRAP! ", "", "  ", "do you gift wrap", "Gift wrap."]

    proposal = await maker.from_topic(topic(), texts, author="ann")

    assert proposal.examples == ("Gift wrap?", "do you gift wrap")
    assert (proposal.source, proposal.conversation_id, proposal.message_ids) == (
        Source.TOPIC,
        None,
        (4, 8),
    )
    assert (proposal.answer, proposal.status) == ("", Status.OPEN)


async def test_a_topic_gives_at_most_its_first_examples(maker: ProposalMaker) -> None:
    texts = [f"gift wrap number {n}" for n in range(TOPIC_EXAMPLES + 5)]
    proposal = await maker.from_topic(topic(), texts, author="ann")
    assert proposal.examples == tuple(texts[:TOPIC_EXAMPLES])


@pytest.mark.parametrize("texts", [[], ["", "  \n"]])
async def test_a_topic_without_messages_is_refused(
    maker: ProposalMaker, store: ProposalStore, texts: list[str]
) -> None:
    with pytest.raises(ValueError, match="no messages left"):
        await maker.from_topic(topic(), texts, author="ann")
    assert await store.waiting() == []


@pytest.mark.parametrize(
    ("near", "keywords", "name", "kind", "intent_id", "title"),
    [
        ("returns", ("wrap",), "", ProposalKind.ADD_EXAMPLES, "returns", "Returns"),
        ("returns", ("wrap",), "Gift wrap", ProposalKind.ADD_EXAMPLES, "returns", "Returns"),
        (
            None,
            ("gift", "wrapping", "birthday", "paper", "ribbon"),
            "",
            ProposalKind.NEW_INTENT,
            "gift_wrapping_birthday_paper",
            "Gift wrapping birthday",
        ),
        (
            None,
            ("gift", "wrapping"),
            " Gift wrap ",
            ProposalKind.NEW_INTENT,
            "gift_wrap",
            "Gift wrap",
        ),
        ("renamed_since", ("gift",), "", ProposalKind.NEW_INTENT, "gift", "Gift"),
        (None, ("refunds",), "", ProposalKind.NEW_INTENT, "refunds_2", "Refunds"),
        (None, ("wrap",), "Greeting", ProposalKind.NEW_INTENT, "greeting_2", "Greeting"),
        (None, ("wrap",), "404 Fehler", ProposalKind.NEW_INTENT, "intent_404_fehler", "404 Fehler"),
        (
            None,
            ("rückgabe", "größe"),
            "",
            ProposalKind.NEW_INTENT,
            "ruckgabe_grosse",
            "Rückgabe größe",
        ),
        (None, (), "", ProposalKind.NEW_INTENT, "new_intent", ""),
    ],
    ids=[
        "near an intent",
        "near an intent, a name given",
        "named by its keywords",
        "named by the name given",
        "near an intent no longer there",
        "keywords naming an existing intent",
        "a name taken",
        "a name starting with a digit",
        "accents",
        "no keywords",
    ],
)
async def test_a_topic_proposes_examples_of_its_near_intent_or_a_new_intent(
    maker: ProposalMaker,
    near: str | None,
    keywords: tuple[str, ...],
    name: str,
    kind: ProposalKind,
    intent_id: str,
    title: str,
) -> None:
    proposal = await maker.from_topic(
        topic(keywords, near), ["purple elephants dance"], author="ann", name=name
    )

    assert (proposal.kind, proposal.intent_id, proposal.title) == (kind, intent_id, title)
    assert proposal.intent_id.isidentifier()
    assert proposal.flags == ()


async def test_a_topic_near_an_intent_can_still_become_a_new_intent(maker: ProposalMaker) -> None:
    """The verdict can be wrong (gift wrapping put near returns): ops may make a new intent."""
    proposal = await maker.from_topic(
        topic(("gift", "wrap"), "returns"),
        ["purple elephants dance"],
        author="ann",
        name="Gift wrap",
        new_intent=True,
    )
    assert (proposal.kind, proposal.intent_id, proposal.title) == (
        ProposalKind.NEW_INTENT,
        "gift_wrap",
        "Gift wrap",
    )


async def test_a_topics_examples_are_flagged_for_personal_data_and_other_intents(
    maker: ProposalMaker,
) -> None:
    texts = ["gift wrap for order #48213", "where is my order", "gift wrap to bo@example.com"]

    proposal = await maker.from_topic(topic(), texts, author="ann")

    assert flagged(proposal) == {
        ("example", "order", "#48213"),
        ("example", "email", "bo@example.com"),
        ("example", "near_intent", "where is my order"),
    }


async def test_examples_for_an_intent_scoring_near_another_are_flagged(
    maker: ProposalMaker,
) -> None:
    texts = ["return item label", "print the label for my return", "return policy item"]

    proposal = await maker.from_topic(topic(near="returns"), texts, author="ann")

    assert proposal.kind is ProposalKind.ADD_EXAMPLES
    assert {(f.text, f.kind) for f in proposal.flags} == {
        ("return item label", "near_intent"),
        ("print the label for my return", "near_intent"),
    }
    assert all("'returns_label'" in f.message for f in proposal.flags)


async def test_proposing_the_same_reply_twice_gives_one_proposal(
    maker: ProposalMaker, store: ProposalStore, database: Database, clock: Clock
) -> None:
    _, ids = await play(database, clock, [("c+bot", "hi"), ("c", "q1"), ("a", "reply")])
    first = await maker.from_reply(ids["reply"], author="ann")
    again = await maker.from_reply(ids["reply"], author="ben")
    assert again == first
    assert [p.id for p in await store.waiting()] == [first.id]
