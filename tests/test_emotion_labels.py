"""Agents label customer messages upset or not upset, for retraining the emotion signal: one
label per message and agent, changeable, kept with the emotion value the bot had shown, and
exported by ``carebot emotion labels`` in the care data set's shape. On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from carebot.exceptions import StoreError
from carebot.models import InboundMessage
from carebot.runtime import Runtime
from carebot.store.emotion_labels import EmotionLabel
from carebot.store.tables import Conversation, DecisionRow, EmotionLabelRow, Message
from tests.conftest import TEST_INTENTS, Clock
from tests.service import UPSET
from tests.test_cli import carebot

_ids = itertools.count(1)


def inbound(text: str, *, user: str = "u1") -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id=user,
        external_message_id=f"m{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
    )


async def upset_message(runtime: Runtime, user: str = "u1") -> tuple[int, int, float]:
    """(conversation id, message id, the emotion the bot showed) of a handed-off message."""
    outcome = await runtime.inbox.receive(inbound(UPSET, user=user))
    assert outcome.decision is not None and outcome.decision.hands_off
    return (
        outcome.received.conversation_id,
        outcome.received.message_id,
        outcome.decision.emotion,
    )


async def labels(runtime: Runtime) -> list[tuple[int, str, str, float | None, datetime]]:
    async with runtime.db.session() as session:
        found = await session.scalars(select(EmotionLabelRow).order_by(EmotionLabelRow.id))
        return [(r.message_id, r.agent, r.label, r.emotion, r.labelled_at) for r in found.all()]


async def test_a_label_is_kept_with_the_emotion_shown_and_changed_by_labelling_again(
    runtime: Runtime, clock: Clock
) -> None:
    conversation_id, message_id, shown = await upset_message(runtime)
    assert shown >= runtime.settings.emotion.threshold  # the bot said: upset

    found = await runtime.desk.label_emotion(message_id, "Ann", "not_upset")
    assert found == conversation_id
    assert await labels(runtime) == [(message_id, "Ann", "not_upset", shown, clock.now)]

    clock.advance(90)
    await runtime.desk.label_emotion(message_id, "Ann", EmotionLabel.UPSET)  # changed
    await runtime.desk.label_emotion(message_id, "Ben", "not_upset")  # one each
    assert await labels(runtime) == [
        (message_id, "Ann", "upset", shown, clock.now),
        (message_id, "Ben", "not_upset", shown, clock.now),
    ]
    seen = await runtime.labels.of_conversation(conversation_id)
    assert [view.words for view in seen[message_id]] == [
        "marked upset by Ann",
        "marked not upset by Ben",
    ]
    async with runtime.db.session() as session:  # the Slack card counts it as a change
        conversation = await session.get_one(Conversation, conversation_id)
        assert conversation.updated_at == clock.now


async def test_a_message_the_bot_never_scored_is_labelled_without_an_emotion(
    runtime: Runtime,
) -> None:
    conversation_id, _, _ = await upset_message(runtime)
    await runtime.desk.take_over(conversation_id, "Ann")  # with an agent, the bot only records
    later = await runtime.inbox.receive(inbound("hello?? is anyone there"))
    await runtime.desk.label_emotion(later.received.message_id, "Ann", "upset")
    [(_, _, label, emotion, _)] = await labels(runtime)
    assert (label, emotion) == ("upset", None)
    assert later.received.conversation_id == conversation_id


async def test_what_cannot_be_labelled_is_refused_with_the_reason(runtime: Runtime) -> None:
    conversation_id, message_id, _ = await upset_message(runtime)
    other, _, _ = await upset_message(runtime, user="u2")
    async with runtime.db.session() as session:
        reply = await session.scalar(
            select(Message.id).where(
                Message.conversation_id == conversation_id, Message.direction == "out"
            )
        )
    assert reply is not None

    with pytest.raises(StoreError, match="Unknown emotion label 'angry': use upset or not_upset"):
        await runtime.desk.label_emotion(message_id, "Ann", "angry")
    with pytest.raises(StoreError, match=f"Message {reply} is a reply; only customer messages"):
        await runtime.desk.label_emotion(reply, "Ann", "upset")
    with pytest.raises(StoreError, match=f"No message with id {message_id} in conversation"):
        await runtime.desk.label_emotion(message_id, "Ann", "upset", conversation_id=other)
    with pytest.raises(StoreError, match="No message with id 9999"):
        await runtime.desk.label_emotion(9999, "Ann", "upset")
    assert await labels(runtime) == []


async def exported(runtime: Runtime, clock: Clock) -> list[dict[str, object]]:
    """Two labelled messages, exported by the store."""
    _, first, shown = await upset_message(runtime)
    _, second, _ = await upset_message(runtime, user="u2")
    await runtime.desk.label_emotion(first, "Ann", "upset")
    clock.advance(60)
    await runtime.desk.label_emotion(second, "Ben", "not_upset")
    rows = await runtime.labels.export()
    async with runtime.db.session() as session:
        ids = (await session.scalars(select(EmotionLabelRow.id).order_by(EmotionLabelRow.id))).all()
        second_shown = await session.scalar(
            select(DecisionRow.emotion).where(DecisionRow.inbound_message_id == second)
        )
    assert rows == [
        {
            "id": f"agent-label-{ids[0]}",
            "text": UPSET,
            "label": "upset",
            "style": "chat",
            "kind": "agent_label",
            "emotion": shown,
            "agent": "Ann",
            "labelled_at": "2026-11-18T10:00:00+00:00",
            "channel": "test",
            "message_id": first,
        },
        {
            "id": f"agent-label-{ids[1]}",
            "text": UPSET,
            "label": "calm",  # the care set's word for not upset
            "style": "chat",
            "kind": "agent_label",
            "emotion": second_shown,
            "agent": "Ben",
            "labelled_at": "2026-11-18T10:01:00+00:00",
            "channel": "test",
            "message_id": second,
        },
    ]
    return rows


async def test_the_labels_are_exported_in_the_care_data_shape(
    runtime: Runtime, clock: Clock
) -> None:
    await exported(runtime, clock)


def config_for(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "labels.toml"
    path.write_text(
        f'[store]\nurl = "{database_url}"\n[matcher]\nintents_dir = "{TEST_INTENTS}"\n'
        '[placeholders]\ntracking_url = "https://t.example"\n'
    )
    return path


async def test_carebot_emotion_labels_writes_them_as_jsonl(
    runtime: Runtime, clock: Clock, tmp_path: Path, database_url: str
) -> None:
    rows = await exported(runtime, clock)
    config, out = config_for(tmp_path, database_url), tmp_path / "care" / "agent_labels.jsonl"

    done = carebot("-c", str(config), "emotion", "labels", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"Wrote 2 labels to {out} (1 upset, 1 calm)" in done.stdout
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    piped = carebot("-c", str(config), "emotion", "labels", "--out", "-")
    assert piped.stdout.splitlines()[:2] == out.read_text().splitlines()


def test_exporting_from_a_database_that_is_not_migrated_says_what_to_do(tmp_path: Path) -> None:
    config = config_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    done = carebot("-c", str(config), "emotion", "labels", "--out", str(tmp_path / "x.jsonl"))
    assert done.returncode == 2
    assert "is at migration none" in done.stderr and "carebot db upgrade" in done.stderr
    assert not (tmp_path / "x.jsonl").exists()
