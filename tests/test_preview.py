"""The change preview (issue 15, section 2): stored customer messages, stored through the real
pipeline, replayed against an edited intent set; every message whose decision would change,
grouped. With the fake encoder, on SQLite and PostgreSQL; the command on a small SQLite store."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carebot.config import Settings
from carebot.console.preview import (
    Change,
    ChangePreview,
    Group,
    Outcome,
    Preview,
    group_of,
    preview_table,
)
from carebot.models import DecisionKind, InboundMessage, Reason
from carebot.nlu.embedding_cache import EmbeddingCache
from carebot.nlu.intents import Intent, IntentSet
from carebot.nlu.matcher import Matcher
from carebot.runtime import Runtime, build_runtime, embedding_cache, emotion_scorer
from carebot.store.embeddings import MessageEmbeddingStore
from tests.conftest import EXACT_BACKOFF, ROOT, TEST_INTENTS, Clock, make_settings, settings_data
from tests.fakes import FakeEncoder, RecordingChannel
from tests.migrated import migrate

_users = itertools.count(1)
# Decided with the test intents and thresholds: answered, handed off, answered, not recognised...
UNRELATED = ("hello", "delete my account", "what colour is the sky", "track my order status")


class OtherModel(FakeEncoder):
    """The fake encoder under another fingerprint: the stored vectors are not its own."""

    model_id = "fake-bag-of-words@2"


async def send(runtime: Runtime, texts: Sequence[str]) -> dict[str, int]:
    """Each text from a customer of its own, through the pipeline; the message ids by text."""
    ids = {}
    for text in texts:
        n = next(_users)
        outcome = await runtime.inbox.receive(
            InboundMessage("test", f"p{n}", f"pm{n}", text, runtime.clock())
        )
        ids[text] = outcome.received.message_id
    return ids


def preview_for(runtime: Runtime, settings: Settings, **kwargs: object) -> ChangePreview:
    encoder = runtime.triage.matcher.encoder
    options: dict[str, object] = {"cache": None, **kwargs}
    return ChangePreview(
        db=runtime.db,
        settings=settings,
        emotion=emotion_scorer(settings, encoder),
        **options,  # type: ignore[arg-type]
    )


def replaced(intents: IntentSet, intent_id: str, **changes: object) -> IntentSet:
    return IntentSet(
        tuple(
            dataclasses.replace(i, **changes) if i.id == intent_id else i  # type: ignore[arg-type]
            for i in intents.intents
        )
    )


def added(intents: IntentSet, intent: Intent) -> IntentSet:
    return IntentSet((*intents.intents, intent))


def deleted(intents: IntentSet, intent_id: str) -> IntentSet:
    return IntentSet(tuple(i for i in intents.intents if i.id != intent_id))


def moved(intents: IntentSet, example: str, source: str, target: str) -> IntentSet:
    keep = tuple(e for e in intents[source].examples if e != example)
    with_it = (*intents[target].examples, example)
    return replaced(replaced(intents, source, examples=keep), target, examples=with_it)


SUBSCRIPTION = Intent(
    "cancel_subscription",
    ("cancel my subscription", "stop my subscription", "end subscription plan"),
    answer="Cancel it under Settings > Plan.",
)
ORDER_TRACKING = Intent(
    "order_tracking", ("where is my order", "where my order is"), answer="It is on its way."
)
EDITS: dict[str, tuple[Callable[[IntentSet], IntentSet], str, Group, str, str]] = {
    # edit, the message it changes, its group, old -> new as shown
    "an intent added": (
        lambda s: added(s, SUBSCRIPTION),
        "cancel my subscription please",
        Group.NEWLY_ANSWERED,
        "clarify - 0.29",
        "answer cancel_subscription 0.87",
    ),
    "an intent deleted": (
        lambda s: deleted(s, "refunds"),
        "refund not received",
        Group.NO_LONGER_ANSWERED,
        "answer refunds 1.00",
        "clarify - 0.00",
    ),
    "an answer threshold raised": (
        lambda s: replaced(s, "refunds", answer_threshold=0.99),
        "refund money back now",
        Group.NO_LONGER_ANSWERED,
        "answer refunds 0.94",
        "draft refunds 0.94",
    ),
    "an example moved to another intent": (
        lambda s: moved(s, "lost my return label", "returns_label", "returns"),
        "lost my return label",
        Group.DIFFERENT_INTENT,
        "answer returns_label 1.00",
        "answer returns 1.00",
    ),
    "a near-duplicate intent added": (
        lambda s: added(s, ORDER_TRACKING),
        "where is my order",
        Group.NEWLY_AMBIGUOUS,
        "answer order_status 1.00",
        "clarify order_status 1.00",  # a tie: the first intent is named
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
async def test_each_edit_lists_the_message_it_changes_in_its_group_and_nothing_else(
    runtime: Runtime, settings: Settings, edit: str
) -> None:
    change_intents, text, group, old, new = EDITS[edit]
    ids = await send(runtime, [*UNRELATED, text])
    live = runtime.triage.matcher

    preview = await preview_for(runtime, settings).run(live, change_intents(live.intents))

    assert preview.messages == len(UNRELATED) + 1
    assert preview.reencoded == 0
    [change] = preview.changes  # the unrelated messages are decided as before: not listed
    assert (change.message_id, change.text, change.group) == (ids[text], text, group)
    assert (str(change.old), str(change.new)) == (old, new)
    assert change.conversation_id > 0 and change.at == runtime.clock()
    assert preview.counts() == {g: int(g is group) for g in Group}
    assert list(preview.counts()) == list(Group)  # every group, in order
    assert preview.by_group() == {g: [change] if g is group else [] for g in Group}


async def test_the_live_intents_themselves_change_nothing(
    runtime: Runtime, settings: Settings
) -> None:
    await send(runtime, [*UNRELATED, "where is my order", "refund money back now"])
    live = runtime.triage.matcher
    preview = await preview_for(runtime, settings).run(live, live.intents)
    assert (preview.messages, preview.changes) == (6, ())
    assert "No decision would change." in preview_table(preview)


async def test_survey_replies_are_not_replayed(
    tmp_path: Path, database_url: str, encoder: FakeEncoder, clock: Clock
) -> None:
    settings = make_settings(tmp_path, survey={"helpful": "always", "rating": False})
    await migrate(database_url)  # as the runtime fixture: PostgreSQL is never migrated implicitly
    runtime = await build_runtime(
        settings,
        encoder=encoder,
        channels={"test": RecordingChannel("test")},
        clock=clock,
        database_url=database_url,
        backoff=EXACT_BACKOFF,
    )
    try:
        user = InboundMessage("test", "surveyed", "s1", "where is my order", clock())
        question = await runtime.inbox.receive(user)
        await runtime.inbox.receive(dataclasses.replace(user, external_message_id="s2", text="yes"))
        live = runtime.triage.matcher
        # An intent that would answer "yes": were the survey's reply replayed, it would show.
        affirm = Intent("affirm", ("yes", "yes please"), answer="Great.")
        preview = await preview_for(runtime, settings).run(live, added(live.intents, affirm))
        assert preview.messages == 1
        assert preview.changes == ()
        # The same word as a message of its own is replayed, and newly answered.
        await runtime.inbox.receive(InboundMessage("test", "other", "s3", "yes", clock()))
        preview = await preview_for(runtime, settings).run(live, added(live.intents, affirm))
        assert preview.messages == 2
        [change] = preview.changes
        assert (change.text, change.group) == ("yes", Group.NEWLY_ANSWERED)
        assert change.conversation_id != question.received.conversation_id
    finally:
        await runtime.db.close()


async def test_stored_vectors_are_used_when_the_model_is_the_same(
    runtime: Runtime, settings: Settings, encoder: FakeEncoder
) -> None:
    await send(runtime, [*UNRELATED, "refund not received"])
    live = runtime.triage.matcher
    encoder.calls.clear()

    cache = embedding_cache(settings, encoder)  # the examples, as the live matcher cached them
    preview = await preview_for(runtime, settings, cache=cache).run(
        live, deleted(live.intents, "refunds")
    )
    assert (preview.messages, preview.reencoded) == (5, 0)
    assert encoder.calls == []  # no message encoded, and no example (all already known)
    assert [c.text for c in preview.changes] == ["refund not received"]


@pytest.mark.parametrize("stale", [2, 5])
async def test_messages_without_a_vector_of_the_live_model_are_encoded_again(
    runtime: Runtime, settings: Settings, tmp_path: Path, stale: int
) -> None:
    """A vector another model made is not used (here: vectors of another text entirely): that
    message is encoded by the live encoder, in the model's thread, and counted."""
    texts = [*UNRELATED, "refund not received"]
    ids = list((await send(runtime, texts)).values())
    other = OtherModel()
    live = Matcher.configured(
        settings.matcher, encoder=other, intents=runtime.triage.matcher.intents, cache=None
    )
    store = MessageEmbeddingStore(runtime.db)
    fresh = len(ids) - stale  # the oldest keep a vector of the live model; the newest do not
    await store.save(zip(ids[:fresh], other.encode(texts[:fresh]), strict=True), other.model_id)
    unrelated = FakeEncoder().encode(["something else entirely"] * stale)
    await store.save(zip(ids[fresh:], unrelated, strict=True), "old-model@1")
    other.calls.clear()
    encoded: list[int] = []
    one_at_a_time = asyncio.Lock()  # as the service's one model thread runs its work

    async def in_model_thread(work: Callable[[], object]) -> object:
        async with one_at_a_time:
            before = sum(other.calls)
            result = await asyncio.to_thread(work)
            encoded.append(sum(other.calls) - before)
            return result

    cache = EmbeddingCache(tmp_path / "examples", other.model_id)
    edited = deleted(live.intents, "refunds")
    preview = await preview_for(
        runtime, settings, in_model_thread=in_model_thread, cache=cache
    ).run(live, edited)

    assert (preview.messages, preview.reencoded) == (5, stale)
    # The stale messages and the edited set's examples (new to this cache), each encoded once,
    # all in the model's thread.
    assert sum(encoded) == sum(other.calls) == stale + len(edited.examples()[0])
    # Decided from its text, not from the other model's vector.
    assert [c.text for c in preview.changes] == ["refund not received"]


async def test_only_the_last_messages_are_replayed(runtime: Runtime, settings: Settings) -> None:
    texts = [f"where is my order number {n}" for n in range(5)]
    ids = await send(runtime, texts)
    live = runtime.triage.matcher
    preview = await preview_for(runtime, settings).run(
        live, deleted(live.intents, "order_status"), limit=3
    )
    assert preview.messages == 3
    assert [c.message_id for c in preview.changes] == sorted(ids.values(), reverse=True)[:3]
    assert {c.group for c in preview.changes} == {Group.NO_LONGER_ANSWERED}
    with pytest.raises(ValueError, match="at least 1 message"):
        await preview_for(runtime, settings).run(live, live.intents, limit=0)


def outcome(kind: DecisionKind, intent: str | None, *reasons: Reason) -> Outcome:
    return Outcome(kind, intent, 0.5, reasons)


A, D, C, H = DecisionKind.ANSWER, DecisionKind.DRAFT, DecisionKind.CLARIFY, DecisionKind.HANDOFF


@pytest.mark.parametrize(
    ("old", "new", "group"),
    [
        (outcome(C, None), outcome(A, "x"), Group.NEWLY_ANSWERED),
        (outcome(D, "x"), outcome(A, "x"), Group.NEWLY_ANSWERED),
        (outcome(A, "x"), outcome(H, "x"), Group.NO_LONGER_ANSWERED),
        (outcome(A, "x"), outcome(A, "y"), Group.DIFFERENT_INTENT),
        (outcome(A, "x"), outcome(C, "x", Reason.AMBIGUOUS), Group.NEWLY_AMBIGUOUS),
        (outcome(C, None), outcome(C, "x", Reason.AMBIGUOUS), Group.NEWLY_AMBIGUOUS),
        (outcome(D, "x"), outcome(H, "x"), Group.OTHER),
        (outcome(D, "x"), outcome(D, "y"), Group.OTHER),
        (outcome(C, "x", Reason.AMBIGUOUS), outcome(C, None), Group.OTHER),
        (outcome(A, "x"), Outcome(A, "x", 0.9, (Reason.CONFIDENT,)), None),  # the score only
        (outcome(C, None), outcome(C, None), None),
    ],
)
def test_the_group_of_a_change(old: Outcome, new: Outcome, group: Group | None) -> None:
    assert group_of(old, new) is group


def test_the_table_shows_the_counts_then_each_groups_rows() -> None:
    at = datetime(2026, 11, 18, 10, 5, tzinfo=UTC)
    changes = (
        Change(
            12,
            3,
            "I would like to cancel my subscription to the premium plan before it renews",
            at,
            Outcome(C, None, 0.29, (Reason.BELOW_THRESHOLD,)),
            Outcome(A, "cancel_subscription", 0.871, (Reason.CONFIDENT,)),
            Group.NEWLY_ANSWERED,
        ),
        Change(
            7,
            2,
            "where is my order",
            at,
            Outcome(A, "order_status", 1.0, (Reason.CONFIDENT,)),
            Outcome(C, "order_tracking", 1.0, (Reason.AMBIGUOUS,)),
            Group.NEWLY_AMBIGUOUS,
        ),
    )
    table = preview_table(Preview(40, 3, changes, 0.123), title=lambda t: f"*{t}*")
    assert table == (
        "*Replayed 40 customer message(s) against the edited intents (3 encoded again) in "
        "0.12 s: 2 would be decided differently*\n"
        "\n"
        "  newly answered                        1\n"
        "  no longer answered                    0\n"
        "  answered with a different intent      0\n"
        "  newly ambiguous                       1\n"
        "  other changes                         0\n"
        "\n"
        "*Newly answered (1)*\n"
        "  message  time (UTC)        text                                              "
        "old -> new\n"
        "       12  2026-11-18 10:05  I would like to cancel my subscription to the...  "
        "clarify - 0.29 -> answer cancel_subscription 0.87\n"
        "\n"
        "*Newly ambiguous (1)*\n"
        "  message  time (UTC)        text                                              "
        "old -> new\n"
        "        7  2026-11-18 10:05  where is my order                                 "
        "answer order_status 1.00 -> clarify order_tracking 1.00\n"
    )


CLI = (
    "import sys; from carebot.cli import main; from tests.fakes import FakeEncoder; "
    "sys.exit(main(sys.argv[1:], encoder=FakeEncoder()))"
)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CAREBOT_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def config_file(tmp_path: Path, url: str) -> Path:
    lines = []
    for name, values in settings_data(tmp_path, store={"url": url}).items():
        lines += [f"[{name}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def fill(settings: Settings, url: str, texts: Sequence[str]) -> dict[str, int]:
    runtime = await build_runtime(
        settings, encoder=FakeEncoder(), channels={"test": RecordingChannel("test")}, clock=Clock()
    )
    try:
        return await send(runtime, texts)
    finally:
        await runtime.db.close()


def test_the_command_prints_the_counts_and_the_changes(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'carebot.db'}"
    config = config_file(tmp_path, url)
    settings = make_settings(tmp_path, store={"url": url})
    ids = asyncio.run(fill(settings, url, [*UNRELATED, "cancel my subscription please"]))
    edited = tmp_path / "edited"
    shutil.copytree(TEST_INTENTS, edited)
    with (edited / "shop.yaml").open("a") as file:
        file.write(
            "  - id: cancel_subscription\n"
            "    examples:\n"
            "      - cancel my subscription\n"
            "      - stop my subscription\n"
            "      - end subscription plan\n"
            "    answer: Cancel it under Settings > Plan.\n"
        )

    result = run_cli("-c", str(config), "intents", "preview", str(edited))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Replayed 5 customer message(s) against the edited intents (0 ")
    assert lines[0].endswith(": 1 would be decided differently")
    assert [line.split() for line in lines[2:7]] == [
        ["newly", "answered", "1"],
        ["no", "longer", "answered", "0"],
        ["answered", "with", "a", "different", "intent", "0"],
        ["newly", "ambiguous", "0"],
        ["other", "changes", "0"],
    ]
    assert lines[8] == "Newly answered (1)"
    assert lines[10].split() == [
        str(ids["cancel my subscription please"]),
        "2026-11-18",
        "10:00",
        *["cancel", "my", "subscription", "please"],
        *["clarify", "-", "0.29", "->", "answer", "cancel_subscription", "0.87"],
    ]
    assert len(lines) == 11

    limited = run_cli("-c", str(config), "intents", "preview", str(edited), "--limit", "2")
    assert limited.returncode == 0, limited.stderr
    assert limited.stdout.startswith("Replayed 2 customer message(s)")


def test_the_command_refuses_a_folder_with_errors_with_file_and_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'carebot.db'}"
    config = config_file(tmp_path, url)
    edited = tmp_path / "edited"
    shutil.copytree(TEST_INTENTS, edited)
    shop = edited / "shop.yaml"
    shop.write_text(shop.read_text() + "  - id: returns\n    examples: [again]\n")
    line = len(shop.read_text().splitlines()) - 1

    result = run_cli("-c", str(config), "intents", "preview", str(edited))

    assert result.returncode == 1
    assert f"{shop}:{line}: error:" in result.stdout
    assert "returns" in result.stdout
    assert "1 error(s); fix them" in result.stdout
    assert not (tmp_path / "carebot.db").exists()  # refused before the store was opened
