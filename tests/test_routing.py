"""Teams and routing (README, "Teams"): the router's rules, ``carebot routes check``, the team a
handoff is routed to when it opens (SQLite and PostgreSQL), transfers, round-robin with
availability, who may act on a team's handoffs, and the audit trail."""

from __future__ import annotations

import asyncio
import itertools
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from carebot.agents import AgentDesk
from carebot.cli import main
from carebot.config import RouteRule, Settings, load_settings
from carebot.events import EventHub
from carebot.exceptions import StoreError
from carebot.models import Decision, DecisionKind, InboundMessage, Reason
from carebot.runtime import Runtime
from carebot.store.conversations import ConversationStore
from carebot.store.customers import CustomerStore
from carebot.store.database import Database
from carebot.store.emotion_labels import EmotionLabelStore
from carebot.store.handoffs import HandoffStore
from carebot.store.tables import Conversation, ConversationEvent, Handoff, OutboxRow
from carebot.store.teamwork import TeamworkStore
from carebot.teams.directory import TeamDirectory
from carebot.teams.membership import Access, Membership, NotAMember
from carebot.teams.routing import Route, RouteFacts, Router
from tests.conftest import ROOT, Clock, settings_data

_ids = itertools.count(1)

# ----------------------------------------------------------------------------- the router

RULES = (
    RouteRule(team="billing", name="billing questions", intents=("refunds",), intent_tags=("pay",)),
    RouteRule(team="escalation", name="legal threats", words=("lawyer", "legal action", "sue")),
    RouteRule(team="vip", customer_ids=(42,)),
    RouteRule(team="vip", name="big accounts", email_domains=("bigcorp.com",)),
    RouteRule(team="social", name="public posts", channels=("instagram",), visibility="public"),
    RouteRule(team="care", name="upset", reasons=("emotional",)),
    RouteRule(team="billing", name="telegram refunds", channels=("telegram",), words=("refund",)),
    RouteRule(team="dach", name="German speakers", languages=("de",)),
)
ROUTER = Router(RULES, "care")
BILLING = Route("billing", "rule 1: billing questions")
LEGAL = Route("escalation", "rule 2: legal threats")
DEFAULT = Route("care", "default team")


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (RouteFacts(intent="refunds"), BILLING),
        (
            RouteFacts(intent="invoice", intent_tags=("pay",)),
            BILLING,
        ),
        (RouteFacts(intent="returns"), DEFAULT),
        (
            RouteFacts(text="I will take Legal   Action now!"),
            LEGAL,
        ),
        (RouteFacts(text="My LAWYER knows"), LEGAL),
        (RouteFacts(text="I'll sue."), LEGAL),
        (RouteFacts(text="my lawyers know"), DEFAULT),  # whole words
        (RouteFacts(text="we pursue it"), DEFAULT),
        (RouteFacts(text="legal, action"), DEFAULT),  # a phrase, in order
        (RouteFacts(customer_id=42), Route("vip", "rule 3")),
        (RouteFacts(customer_id=43), DEFAULT),
        (RouteFacts(email_domains=("BigCorp.com",)), Route("vip", "rule 4: big accounts")),
        (RouteFacts(email_domains=("notbigcorp.com",)), DEFAULT),
        (RouteFacts(channel="instagram", public=True), Route("social", "rule 5: public posts")),
        (RouteFacts(channel="instagram", public=False), DEFAULT),
        (RouteFacts(reasons=("asked_for_human", "emotional")), Route("care", "rule 6: upset")),
        (
            RouteFacts(channel="telegram", text="refund please"),
            Route("billing", "rule 7: telegram refunds"),
        ),
        (RouteFacts(channel="webchat", text="refund please"), DEFAULT),
        (RouteFacts(language="de"), Route("dach", "rule 8: German speakers")),
        (RouteFacts(language="fr"), DEFAULT),
        (RouteFacts(language=None), DEFAULT),  # never placed: no language rule matches
        # the first matching rule wins
        (
            RouteFacts(intent="refunds", text="my lawyer"),
            BILLING,
        ),
        (RouteFacts(), DEFAULT),
    ],
)
def test_the_first_matching_rule_routes_the_handoff(facts: RouteFacts, expected: Route) -> None:
    assert ROUTER.route(facts) == expected


def test_a_router_without_rules_sends_everything_to_the_default_team() -> None:
    router = Router.configured(Settings())
    assert router.route(RouteFacts(intent="refunds", text="lawyer")) == Route(
        "care", "default team"
    )


# ----------------------------------------------------------------------------- settings

AGENTS = [
    {"name": "ann", "display_name": "Ann", "slack_user_id": "UANN", "teams": ["billing"]},
    {"name": "bob", "display_name": "Bob", "slack_user_id": "UBOB"},
    {"name": "eve", "display_name": "Eve", "slack_user_id": "UEVE", "teams": ["escalation"]},
    {"name": "cat", "display_name": "Cat", "slack_user_id": "UCAT", "teams": ["care"]},
    {"name": "lee", "display_name": "Lee", "slack_user_id": "ULEE", "roles": ["agent", "lead"]},
]
TEAMS: list[dict[str, Any]] = [
    {"name": "care", "display_name": "Care", "slack_channel": "CCARE"},
    {
        "name": "billing",
        "display_name": "Billing",
        "slack_channel": "CBILL",
        "members": ["bob"],  # and ann, who lists the team herself
        "round_robin": True,
    },
    {"name": "escalation", "display_name": "Escalation", "slack_channel": "CESC"},
]
ROUTING = {
    "default_team": "care",
    "rules": [
        {"team": "escalation", "name": "legal threats", "words": ["lawyer", "legal action"]},
        {"team": "billing", "name": "account closures", "intent_tags": ["privacy"]},
    ],
}


def team_settings(tmp_path: Path, intents: Path, **overrides: Any) -> Settings:
    data: dict[str, Any] = settings_data(tmp_path, inbox={"agents": AGENTS})
    data["matcher"]["intents_dir"] = str(intents)
    data["teams"] = overrides.pop("teams", TEAMS)
    data["routing"] = overrides.pop("routing", ROUTING)
    return Settings.model_validate(data)


@pytest.fixture
def settings(tmp_path: Path, intents_dir: Path) -> Settings:
    """Two working teams and a default one; account deletion carries the tag ``privacy``."""
    shop = intents_dir / "shop.yaml"
    text = shop.read_text()
    marker = "  - id: account_deletion\n    title: Delete account\n"
    assert marker in text
    shop.write_text(text.replace(marker, marker + "    tags: [privacy]\n"))
    return team_settings(tmp_path, intents_dir)


def test_team_members_join_the_teams_list_and_each_agents_own(settings: Settings) -> None:
    assert settings.team_members("billing") == {"ann", "bob"}
    assert settings.team_members("escalation") == {"eve"}
    assert settings.slack_channel("billing") == "CBILL"


# ----------------------------------------------------------------------------- handoffs


def inbound(text: str, user: str = "u1") -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id=user,
        external_message_id=f"m{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
    )


async def hand_off(runtime: Runtime, text: str, user: str = "u1") -> int:
    outcome = await runtime.inbox.receive(inbound(text, user))
    assert outcome.decision is not None and outcome.decision.hands_off, outcome.decision
    return outcome.received.conversation_id


async def open_handoff(runtime: Runtime, conversation_id: int) -> Handoff:
    handoff = await runtime.handoffs.open_handoff(conversation_id)
    assert handoff is not None
    return handoff


async def outbox_rows(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxRow)) or 0)


@pytest.mark.parametrize(
    ("text", "team", "rule"),
    [
        ("delete my account", "billing", "rule 2: account closures"),  # by the intent's tag
        ("delete my account lawyer", "escalation", "rule 1: legal threats"),  # words first
        ("speak to staff member", "care", "default team"),
    ],
)
async def test_a_handoff_goes_to_the_team_of_the_first_matching_rule(
    runtime: Runtime, text: str, team: str, rule: str
) -> None:
    conversation_id = await hand_off(runtime, text)
    handoff = await open_handoff(runtime, conversation_id)
    assert (handoff.team, handoff.route) == (team, rule)
    routed = (await runtime.teamwork.events(conversation_id))[0]
    assert (routed.kind, routed.actor, routed.detail) == (
        "routed",
        "carebot",
        {"team": team, "rule": rule},
    )
    assert routed.handoff_id == handoff.id


async def test_a_waiting_customers_later_messages_do_not_route_again(runtime: Runtime) -> None:
    conversation_id = await hand_off(runtime, "delete my account")
    await runtime.inbox.receive(inbound("delete my account lawyer"))
    handoff = await open_handoff(runtime, conversation_id)
    assert handoff.team == "billing"
    kinds = [e.kind for e in await runtime.teamwork.events(conversation_id)]
    assert kinds.count("routed") == 1


# A customer asking for a person: the handoff the routing tests below route.
ASKS_FOR_A_PERSON = Decision(
    kind=DecisionKind.HANDOFF,
    reasons=(Reason.ASKED_FOR_HUMAN,),
    intent=None,
    score=0.0,
    margin=0.0,
    emotion=0.0,
    reply="A colleague will answer.",
)


async def team_of_handoff(
    store: ConversationStore, database: Database, messages: list[InboundMessage]
) -> str | None:
    """The team the handoff of the last of ``messages`` (one customer's, stored in order)
    went to."""
    for message in messages:
        received = await store.receive(message)
    await store.record_decision(received, ASKS_FOR_A_PERSON, {})
    async with database.session() as session:
        handoff = await session.scalar(
            select(Handoff).where(Handoff.conversation_id == received.conversation_id)
        )
    return None if handoff is None else handoff.team


def asking(user: str, clock: Clock, **fields: Any) -> InboundMessage:
    return InboundMessage(
        channel="webchat",
        external_user_id=user,
        external_message_id=f"m{next(_ids)}",
        text="a person please",
        sent_at=clock(),
        **fields,
    )


async def test_routing_reads_the_customers_email_domains(
    tmp_path: Path, intents_dir: Path, database: Database, clock: Clock
) -> None:
    settings = team_settings(
        tmp_path,
        intents_dir,
        routing={"rules": [{"team": "escalation", "email_domains": ["bigcorp.com"]}]},
    )
    store = ConversationStore(database, clock=clock, teams=TeamDirectory(settings))
    for user, email, team in (("a", "jo@BigCorp.com", "escalation"), ("b", "jo@corp.com", "care")):
        message = asking(user, clock, profile={"email": email})
        assert await team_of_handoff(store, database, [message]) == team


async def test_routing_reads_the_language_of_the_customers_latest_placed_message(
    tmp_path: Path, intents_dir: Path, database: Database, clock: Clock
) -> None:
    """ "ok" (not placed) after a German message leaves the customer German; a French message
    after a German one makes them French."""
    settings = team_settings(
        tmp_path,
        intents_dir,
        routing={"rules": [{"team": "escalation", "languages": ["de"]}]},
    )
    store = ConversationStore(database, clock=clock, teams=TeamDirectory(settings))
    for user, languages, team in (
        ("a", ["de", None], "escalation"),
        ("b", ["de", "fr"], "care"),
        ("c", [None], "care"),
    ):
        messages = [asking(user, clock, language=language) for language in languages]
        assert await team_of_handoff(store, database, messages) == team, user


# ----------------------------------------------------------------------------- round robin


async def test_round_robin_assigns_in_turn_to_available_members(runtime: Runtime) -> None:
    assignees = []
    for user in ("u1", "u2", "u3"):
        conversation_id = await hand_off(runtime, "delete my account", user)
        assignees.append((await open_handoff(runtime, conversation_id)).assigned_to)
    assert assignees == ["ann", "bob", "ann"]
    assigned = (await runtime.teamwork.events(conversation_id))[-1]
    assert (assigned.kind, assigned.actor) == ("assigned", "carebot")
    assert assigned.detail == {"agent": "ann", "team": "billing", "how": "round robin"}

    await runtime.desk.set_available("ann", False)
    assert not await runtime.teamwork.available("ann")
    assert await runtime.teamwork.available("bob")  # never said: available
    conversation_id = await hand_off(runtime, "delete my account", "u4")
    assert (await open_handoff(runtime, conversation_id)).assigned_to == "bob"
    conversation_id = await hand_off(runtime, "delete my account", "u5")
    assert (await open_handoff(runtime, conversation_id)).assigned_to == "bob"

    await runtime.desk.set_available("bob", False)
    assert await runtime.teamwork.presence() == {"ann": False, "bob": False}
    conversation_id = await hand_off(runtime, "delete my account", "u6")
    handoff = await open_handoff(runtime, conversation_id)
    assert handoff.assigned_to is None and handoff.assigned_at is None
    kinds = [e.kind for e in await runtime.teamwork.events(conversation_id)]
    assert kinds == ["routed"]


async def test_handoffs_opening_at_once_take_turns(runtime: Runtime) -> None:
    """Two handoffs for one round-robin team received together go to two different members
    (several processes at once: the test below)."""
    conversations = await asyncio.gather(
        hand_off(runtime, "delete my account", "u1"), hand_off(runtime, "delete my account", "u2")
    )
    assignees = {(await open_handoff(runtime, c)).assigned_to for c in conversations}
    assert assignees == {"ann", "bob"}


HANDING_OFF_WORKER = """
import asyncio, sys
from datetime import UTC, datetime
from pathlib import Path
from carebot.models import InboundMessage
from carebot.runtime import build_runtime
from tests.fakes import FakeEncoder, RecordingChannel
from tests.test_routing import team_settings

async def main(url, folder, intents, name, count):
    settings = team_settings(Path(folder), Path(intents))
    runtime = await build_runtime(
        settings, encoder=FakeEncoder(), channels={"test": RecordingChannel("test")},
        database_url=url,
    )
    await asyncio.gather(*(
        runtime.inbox.receive(InboundMessage(
            "test", f"{name}-{i}", f"{name}-m{i}", "delete my account", datetime.now(UTC)
        ))
        for i in range(count)
    ))
    await runtime.db.close()

asyncio.run(main(*sys.argv[1:5], int(sys.argv[5])))
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_workers_in_several_processes_assign_in_turn(
    runtime: Runtime, tmp_path: Path, settings: Settings
) -> None:
    """Three real processes open handoffs for the round-robin team at once: in the order the
    assignments were made, the members alternate, each getting half."""
    url = runtime.db.url.render_as_string(hide_password=False)
    intents = str(settings.path(settings.matcher.intents_dir))
    processes = []
    for name in ("w1", "w2", "w3"):
        folder = tmp_path / name
        folder.mkdir()
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", HANDING_OFF_WORKER, url, str(folder), intents, name, "6",
                cwd=ROOT,
            )
        )  # fmt: skip
    assert [await p.wait() for p in processes] == [0, 0, 0]
    async with runtime.db.session() as session:
        rows = await session.scalars(
            select(ConversationEvent)
            .where(ConversationEvent.kind == "assigned")
            .order_by(ConversationEvent.id)
        )
        assignees = [event.detail["agent"] for event in rows]
    assert assignees == ["ann", "bob"] * 9


async def test_a_team_without_round_robin_leaves_handoffs_unassigned(runtime: Runtime) -> None:
    conversation_id = await hand_off(runtime, "delete my account lawyer")
    assert (await open_handoff(runtime, conversation_id)).assigned_to is None


# ----------------------------------------------------------------------------- transfer


async def test_a_transfer_moves_the_handoff_to_the_other_teams_queue(runtime: Runtime) -> None:
    conversation_id = await hand_off(runtime, "delete my account")
    await runtime.desk.take_over(conversation_id, "ann")
    sent = await outbox_rows(runtime)
    moved = await runtime.desk.transfer(conversation_id, "ann", "escalation", note=" legal ")
    assert (moved.from_team, moved.to_team, moved.previous_agent) == (
        "billing",
        "escalation",
        "ann",
    )
    handoff = await open_handoff(runtime, conversation_id)
    assert (handoff.team, handoff.route) == ("escalation", "transferred by ann")
    assert handoff.assigned_to is None and handoff.assigned_at is None
    conversation = await runtime.conversations.conversation(conversation_id)
    assert (conversation.state, conversation.agent) == ("waiting_for_agent", None)
    assert await outbox_rows(runtime) == sent  # the customer is not messaged
    trail = await runtime.teamwork.events(conversation_id)
    assert [e.kind for e in trail] == ["routed", "assigned", "transferred"]
    assert (trail[-1].actor, trail[-1].detail) == (
        "ann",
        {"from": "billing", "to": "escalation", "note": "legal", "agent": "ann"},
    )
    # the new team's members act on it now; the old team's are refused
    with pytest.raises(NotAMember):
        await runtime.desk.take_over(conversation_id, "ann")
    await runtime.desk.take_over(conversation_id, "eve")


@pytest.mark.parametrize(
    ("to_team", "close_first", "message"),
    [
        ("billing", False, "Conversation {id} is already with the Billing team"),
        ("legal", False, "No team is named 'legal' (the teams: care, billing, escalation)"),
        ("escalation", True, "Conversation {id} is closed; it cannot be moved"),
    ],
)
async def test_a_transfer_is_refused_with_the_reason(
    runtime: Runtime, to_team: str, close_first: bool, message: str
) -> None:
    conversation_id = await hand_off(runtime, "delete my account")
    if close_first:
        await runtime.desk.close(conversation_id, "bob")
    with pytest.raises(StoreError) as refused:
        await runtime.desk.transfer(conversation_id, "bob", to_team)
    assert str(refused.value) == message.format(id=conversation_id)
    kinds = [e.kind for e in await runtime.teamwork.events(conversation_id)]
    assert "transferred" not in kinds


async def test_a_conversation_with_the_bot_cannot_be_transferred(runtime: Runtime) -> None:
    outcome = await runtime.inbox.receive(inbound("where is my order"))
    with pytest.raises(StoreError, match="is with the bot"):
        await runtime.desk.transfer(outcome.received.conversation_id, "ann", "billing")


# ----------------------------------------------------------------------------- membership


@pytest.mark.parametrize(
    "action", ["take_over", "reply", "send_draft", "resolve", "close", "transfer"]
)
async def test_only_the_teams_members_and_leads_act_on_its_handoffs(
    runtime: Runtime, action: str
) -> None:
    conversation_id = await hand_off(runtime, "delete my account")  # billing
    sent = await outbox_rows(runtime)
    act: dict[str, Any] = {
        "take_over": lambda who: runtime.desk.take_over(conversation_id, who),
        "reply": lambda who: runtime.desk.reply(conversation_id, who, "Hello"),
        "send_draft": lambda who: runtime.desk.send_draft(conversation_id, who),
        "resolve": lambda who: runtime.desk.resolve(conversation_id, who),
        "close": lambda who: runtime.desk.close(conversation_id, who),
        "transfer": lambda who: runtime.desk.transfer(conversation_id, who, "escalation"),
    }
    for outsider in ("eve", "Cat", "someone"):  # by name, display name, or nobody we know
        with pytest.raises(NotAMember) as refused:
            await act[action](outsider)
        assert str(refused.value) == (
            f"Conversation {conversation_id} belongs to the Billing team; only its members "
            "can act on it."
        )
    assert await outbox_rows(runtime) == sent
    conversation = await runtime.conversations.conversation(conversation_id)
    assert conversation.state == "waiting_for_agent"
    await act[action]("Lee")  # a lead, by display name


async def test_an_agent_starting_a_handoff_routes_it_to_their_team(runtime: Runtime) -> None:
    outcome = await runtime.inbox.receive(inbound("where is my order"))
    conversation_id = outcome.received.conversation_id
    await runtime.desk.take_over(conversation_id, "Eve")
    handoff = await open_handoff(runtime, conversation_id)
    assert (handoff.team, handoff.route) == ("escalation", "team of Eve")
    routed = (await runtime.teamwork.events(conversation_id))[0]
    assert routed.detail == {"team": "escalation", "rule": "team of Eve"}


async def test_an_agent_in_no_team_starts_handoffs_in_the_default_team(runtime: Runtime) -> None:
    outcome = await runtime.inbox.receive(inbound("where is my order"))
    await runtime.desk.take_over(outcome.received.conversation_id, "lee")
    handoff = await open_handoff(runtime, outcome.received.conversation_id)
    assert (handoff.team, handoff.route) == ("care", "default team")


@pytest.mark.parametrize(
    ("team", "who", "access"),
    [
        ("billing", "ann", Access.MEMBER),  # lists the team herself
        ("billing", "Bob", Access.MEMBER),  # in its members, by display name
        ("billing", "UBOB", Access.MEMBER),  # by Slack user id
        ("billing", "eve", Access.REFUSED),
        ("billing", "ULEE", Access.LEAD),
        ("billing", "stranger", Access.REFUSED),
        ("escalation", "eve", Access.MEMBER),
        (None, "cat", Access.MEMBER),  # None: the default team
    ],
)
def test_membership(settings: Settings, team: str | None, who: str, access: Access) -> None:
    assert Membership(settings).access(team, who) is access


def test_a_team_without_members_falls_back_to_its_slack_channel(
    tmp_path: Path, intents_dir: Path
) -> None:
    teams = [*TEAMS, {"name": "press", "display_name": "Press", "slack_channel": "CPRESS"}]
    membership = Membership(team_settings(tmp_path, intents_dir, teams=teams))
    assert membership.access("press", "anyone") is Access.CHANNEL
    assert membership.slack_channel_fallback("press") == "CPRESS"
    assert membership.slack_channel_fallback("billing") is None
    assert membership.may_act_in_slack("press", "UZED", frozenset({"UZED"}))
    assert not membership.may_act_in_slack("press", "UEVE", frozenset({"UZED"}))
    assert membership.may_act_in_slack("billing", "UANN", frozenset())
    assert not membership.may_act_in_slack("billing", "UEVE", frozenset({"UEVE"}))


async def test_the_shipped_config_has_one_team_everyone_acts_on(
    database: Database, clock: Clock
) -> None:
    """The shipped config.toml, unchanged, through a handoff: the default team "care", and any
    agent may act on it, as before teams existed."""
    shipped = load_settings(ROOT / "config.toml")
    teams = TeamDirectory(shipped)
    store = ConversationStore(database, clock=clock, teams=teams)
    received = await store.receive(inbound("a person please"))
    decision = Decision(
        kind=DecisionKind.HANDOFF,
        reasons=(Reason.ASKED_FOR_HUMAN,),
        intent="talk_to_human",
        score=0.9,
        margin=0.5,
        emotion=0.0,
        reply="A colleague will answer.",
    )
    await store.record_decision(received, decision, {})
    handoffs = HandoffStore(database, clock=clock, teams=teams)
    teamwork = TeamworkStore(database, clock=clock, teams=teams)

    async def nothing(_sent: Any) -> None:
        return None

    desk = AgentDesk(
        handoffs=handoffs,
        customers=CustomerStore(database, clock=clock, link_by=("email",)),
        labels=EmotionLabelStore(database, clock=clock),
        events=EventHub(),
        on_outbox=nothing,
        membership=Membership(shipped),
        teamwork=teamwork,
    )
    conversation_id = received.conversation_id
    assert await teamwork.team_of(conversation_id) == "care"
    handoff = await handoffs.open_handoff(conversation_id)
    assert handoff is not None and (handoff.team, handoff.route) == ("care", "default team")
    await desk.take_over(conversation_id, "anyone at all")
    async with database.session() as session:
        conversation = await session.get_one(Conversation, conversation_id)
    assert (conversation.state, conversation.agent) == ("with_agent", "anyone at all")


# ----------------------------------------------------------------------------- routes check

CHECK_INTENTS = """\
intents:
  - id: refunds
    tags: [billing]
    examples: [refund please]
    answer: Refunds take 5 days.
  - id: invoices
    tags: [billing]
    examples: [send my invoice]
    answer: It is in your account.
  - id: legal
    tags: [legal]
    handoff: true
    examples: [my lawyer]
    answer: A colleague will answer.
"""


def check_config(tmp_path: Path, rules: str, teams: str = "") -> Path:
    intents = tmp_path / "check-intents"
    intents.mkdir(exist_ok=True)
    (intents / "topics.yaml").write_text(CHECK_INTENTS)
    path = tmp_path / "routes.toml"
    path.write_text(
        f'[matcher]\nintents_dir = "{intents}"\n'
        "[[inbox.agents]]\nname = 'ann'\nslack_user_id = 'UANN'\n"
        "[[teams]]\nname = 'care'\nslack_channel = 'CCARE'\n"
        "[[teams]]\nname = 'billing'\nmembers = ['ann']\n"
        f"{teams}[routing]\ndefault_team = 'care'\n{rules}"
    )
    return path


def test_routes_check_passes_good_rules_and_lists_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = (
        "[[routing.rules]]\nteam = 'billing'\nname = 'money'\nintent_tags = ['billing']\n"
        "[[routing.rules]]\nteam = 'care'\nwords = ['lawyer']\nreasons = ['emotional']\n"
        "channels = ['webchat']\n"
    )
    path = check_config(tmp_path, rules)
    assert main(["routes", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "rule 1: money -> billing",
        "rule 2 -> care",
        "otherwise -> care (default team)",
    ]
    folder = tmp_path / "check-intents"
    assert out[3:] == [
        f"routes.toml: 2 rule(s) checked against 3 intents in {folder}: 0 problem(s)"
    ]


@pytest.mark.parametrize(
    ("rules", "teams", "expected"),
    [
        (
            "[[routing.rules]]\nteam = 'billing'\nintents = ['refund']\n",
            "",
            "rule 1: intents: no intent is named 'refund' (did you mean 'refunds'?)",
        ),
        (
            "[[routing.rules]]\nteam = 'billing'\nintent_tags = ['biling']\n",
            "",
            "rule 1: intent_tags: no intent has the tag 'biling' (did you mean 'billing'?)",
        ),
        (
            "[[routing.rules]]\nteam = 'billing'\nintent_tags = ['vip']\n",
            "",
            "rule 1: intent_tags: no intent has the tag 'vip' (tags in use: billing, legal)",
        ),
        (
            "[[routing.rules]]\nteam = 'billing'\nchannels = ['sms']\n",
            "",
            "rule 1: channels: unknown channel 'sms' (channels: telegram, whatsapp",
        ),
        (
            "[[routing.rules]]\nteam = 'billing'\nreasons = ['angry']\n",
            "",
            "rule 1: reasons: unknown reason code 'angry' (codes: bot_error, emotional",
        ),
        (  # rule 2's intents are all billing-tagged: rule 1 takes every one of its handoffs
            "[[routing.rules]]\nteam = 'billing'\nname = 'money'\nintent_tags = ['billing']\n"
            "[[routing.rules]]\nteam = 'care'\nname = 'refunds'\nintents = ['refunds']\n"
            "channels = ['webchat']\n",
            "",
            "rule 2: refunds: can never match: rule 1: money comes first",
        ),
        (  # no condition at all: a catch-all, so every later rule is dead
            "[[routing.rules]]\nteam = 'care'\n"
            "[[routing.rules]]\nteam = 'billing'\nwords = ['invoice']\n",
            "",
            "rule 2: can never match: rule 1 comes first",
        ),
        (
            "[[routing.rules]]\nteam = 'press'\nwords = ['journalist']\n",
            "[[teams]]\nname = 'press'\n",
            "rule 1: team: team 'press' has no members and no Slack channel",
        ),
    ],
)
def test_routes_check_names_the_rule_and_key_at_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rules: str, teams: str, expected: str
) -> None:
    path = check_config(tmp_path, rules, teams)
    assert main(["routes", "check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"routes.toml: [[routing.rules]] {expected}" in out, out
    assert "1 problem(s)" in out


@pytest.mark.parametrize(
    "rules",
    [
        # narrower first, then wider: both can match
        "[[routing.rules]]\nteam = 'care'\nintents = ['refunds']\nchannels = ['webchat']\n"
        "[[routing.rules]]\nteam = 'billing'\nintent_tags = ['billing']\n",
        # the earlier rule's words are not all the later rule's
        "[[routing.rules]]\nteam = 'care'\nwords = ['lawyer']\n"
        "[[routing.rules]]\nteam = 'billing'\nwords = ['lawyer', 'court']\n",
        # a public-only rule does not take private messages
        "[[routing.rules]]\nteam = 'care'\nvisibility = 'public'\n"
        "[[routing.rules]]\nteam = 'billing'\nvisibility = 'private'\n",
    ],
)
def test_routes_check_keeps_rules_that_can_match(tmp_path: Path, rules: str) -> None:
    assert main(["routes", "check", "--config", str(check_config(tmp_path, rules))]) == 0


def test_routes_check_needs_only_the_intents_ids_and_tags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An intent answer's unknown placeholder is for 'intents check'; the rules still check."""
    path = check_config(tmp_path, "[[routing.rules]]\nteam = 'billing'\nintents = ['refunds']\n")
    topics = tmp_path / "check-intents" / "topics.yaml"
    topics.write_text(topics.read_text().replace("take 5 days", "take {refund_days} days"))
    assert main(["routes", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "have 1 error(s) ('carebot intents check' lists them)" in out
    assert out.endswith("0 problem(s)\n")


def test_routes_check_reads_carebots_own_config_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = check_config(tmp_path, "[[routing.rules]]\nteam = 'billing'\nreasons = ['angry']\n")
    assert main(["--config", str(path), "routes", "check"]) == 1
    assert "unknown reason code 'angry'" in capsys.readouterr().out
