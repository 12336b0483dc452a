"""Each customer message is stored with the language detected in it ([languages] detect), on
every way a message is stored: a new customer's first message, a returning customer's, and the
general transaction (SQLite, or a profile with something to link by)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from carebot.config import Settings
from carebot.models import InboundMessage
from carebot.runtime import Runtime
from carebot.store.tables import Message
from tests.conftest import make_settings

_ids = itertools.count(1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, languages={"default": "en", "detect": ["en", "de", "fr"]})


def inbound(
    text: str, user: str, *, language: str | None = None, phone: str | None = None
) -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id=user,
        external_message_id=f"m{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 12, 7, 10, tzinfo=UTC),
        profile={"name": "Ada", **({"phone": phone} if phone else {})},
        language=language,
    )


async def stored_languages(runtime: Runtime, user: str) -> list[str | None]:
    async with runtime.db.session() as session:
        found = await session.scalars(
            select(Message.language)
            .where(Message.direction == "in", Message.text.contains(f"[{user}]"))
            .order_by(Message.id)
        )
        return list(found)


async def test_the_inbox_stores_each_message_with_the_language_detected_in_it(
    runtime: Runtime,
) -> None:
    said = [
        ("Wo ist meine Bestellung? Ich warte schon seit einer Woche [ann]", "ann"),
        ("ok [ann]", "ann"),  # too short to tell: not placed
        ("Je voudrais annuler ma commande, s'il vous plaît [ann]", "ann"),
        ("Mein Paket ist beschädigt angekommen, was nun? [bob]", "bob"),
        ("My parcel arrived damaged, what now? [cat]", "cat"),
    ]
    for text, user in said:
        await runtime.inbox.receive(inbound(text, user))
    assert await stored_languages(runtime, "ann") == ["de", None, "fr"]
    assert await stored_languages(runtime, "bob") == ["de"]
    assert await stored_languages(runtime, "cat") == ["en"]


async def test_every_way_of_storing_keeps_the_language_given(runtime: Runtime) -> None:
    store = runtime.conversations
    await store.receive(inbound("first [dan]", "dan", language="es"))  # a new customer
    await store.receive(inbound("again [dan]", "dan", language="fr"))  # a returning one
    await store.receive(inbound("unsure [dan]", "dan"))
    await store.receive(inbound("first [eve]", "eve", language="de", phone="+4930123456"))
    assert await stored_languages(runtime, "dan") == ["es", "fr", None]
    assert await stored_languages(runtime, "eve") == ["de"]
