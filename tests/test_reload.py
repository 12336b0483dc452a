"""Live intent reload: an edit goes live without a restart; a broken file changes nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from carebot.config import Settings
from carebot.events import Event
from carebot.models import InboundMessage
from carebot.runtime import Runtime, build_matching
from tests.conftest import Clock, make_settings
from tests.fakes import FakeEncoder

NEW_INTENT = """
  - id: gift_cards
    title: Gift cards
    examples:
      - buy a gift card
      - gift card balance
      - gift voucher present
    answer: Gift cards are sold in the shop.
"""


@pytest.fixture
def settings(tmp_path: Path, intents_dir: Path) -> Settings:
    return make_settings(
        tmp_path, matcher={"intents_dir": str(intents_dir), "method": "classifier"}
    )


@pytest.fixture
async def live(runtime: Runtime) -> AsyncIterator[Runtime]:
    """The conftest runtime (on this module's settings), started, its folder watched."""
    await runtime.start()
    assert runtime.reloader is not None
    async with asyncio.timeout(10):
        await runtime.reloader.watching.wait()
    yield runtime
    await runtime.stop()


def add_intent(intents_dir: Path) -> None:
    shop = intents_dir / "shop.yaml"
    shop.write_text(shop.read_text() + NEW_INTENT)


async def reloaded(runtime: Runtime, count: int) -> None:
    assert runtime.reloader is not None
    async with asyncio.timeout(10), runtime.reloader.changed:
        await runtime.reloader.changed.wait_for(lambda: runtime.reloader.reloads >= count)


async def test_an_edit_goes_live_and_encodes_only_the_new_examples(
    live: Runtime, intents_dir: Path, encoder: FakeEncoder, clock: Clock
) -> None:
    before = live.triage.matcher
    encoder.calls.clear()
    add_intent(intents_dir)
    await reloaded(live, 1)
    assert "gift_cards" in live.triage.matcher.intents
    assert encoder.calls == [3]  # the three new examples; the rest came from the cache
    after = live.triage.matcher.head
    assert after is not None and before.head is not None
    assert after.ids == (*before.head.ids, "gift_cards")  # trained on from the previous head
    message = InboundMessage("test", "u1", "m1", "gift card balance please", clock())
    outcome = await live.inbox.receive(message)
    assert outcome.decision is not None and outcome.decision.intent == "gift_cards"


async def test_a_broken_file_is_refused_with_its_line_and_the_last_good_set_stays(
    live: Runtime, intents_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert live.reloader is not None
    before = live.triage.matcher
    (intents_dir / "broken.yaml").write_text("intents:\n  - id: half\n    examples: [a\n")
    with caplog.at_level(logging.ERROR, logger="carebot.reload"):
        assert await live.reloader.reload() is False
    assert live.triage.matcher is before
    assert any("broken.yaml:" in r.getMessage() for r in caplog.records)
    assert any("last good intents stay live" in r.getMessage() for r in caplog.records)
    (intents_dir / "broken.yaml").unlink()
    add_intent(intents_dir)
    assert await live.reloader.reload() is True
    assert "gift_cards" in live.triage.matcher.intents


def test_reload_can_be_turned_off(tmp_path: Path, encoder: FakeEncoder) -> None:
    settings = make_settings(tmp_path, matcher={"reload": False})
    assert build_matching(settings, encoder)[2] is None


async def test_an_edit_made_before_the_watcher_was_up_is_picked_up(
    runtime: Runtime, intents_dir: Path
) -> None:
    add_intent(intents_dir)  # after the intents were read, before the watcher starts
    await runtime.start()
    try:
        await reloaded(runtime, 1)
        assert "gift_cards" in runtime.triage.matcher.intents
    finally:
        await runtime.stop()


async def test_another_workers_reload_is_followed_only_when_the_folder_changed_here(
    runtime: Runtime, intents_dir: Path
) -> None:
    """The notice of another worker's reload (not started: no watcher here, as on a network
    folder that gives no change notices) reads the folder again when it changed, else not."""
    reloader = runtime.reloader
    assert reloader is not None
    notice = Event("intents", 0, remote=True)
    assert await reloader.heard(notice) is False  # nothing changed: nothing to do
    add_intent(intents_dir)
    assert await reloader.heard(Event("intents", 0)) is False  # this worker's own notice
    assert await reloader.heard(notice) is True
    assert "gift_cards" in runtime.triage.matcher.intents
    assert await reloader.heard(notice) is False and reloader.reloads == 1


async def test_a_reload_seen_by_the_watcher_is_announced_to_the_other_workers(
    live: Runtime, intents_dir: Path
) -> None:
    async with live.events.subscribe() as events:
        add_intent(intents_dir)
        await reloaded(live, 1)
        async with asyncio.timeout(10):
            assert await events.get() == Event("intents", 0)
