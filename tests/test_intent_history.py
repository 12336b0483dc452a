"""The intent history in the store: revisions kept and read back, their diffs, the rollback
that undid one, and what became of an id that is no longer in the files (renames followed)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from carebot.exceptions import StoreError
from carebot.store.database import MIGRATIONS, Database
from carebot.store.intent_history import Action, Fate, Revision, RevisionStore
from tests.conftest import Clock

OLD = "intents:\n  - id: a\n    examples: [one]\n    answer: Old.\n"
NEW = "intents:\n  - id: a\n    examples: [one]\n    answer: New.\n"


@pytest.fixture
def store(database: Database, clock: Clock) -> RevisionStore:
    return RevisionStore(database, clock=clock)


async def change(
    store: RevisionStore,
    clock: Clock,
    previous: str | None,
    intent: str | None,
    *,
    file: str = "shop.yaml",
    author: str = "ann",
    reverts: int | None = None,
) -> Revision:
    """A revision one minute after the last one; the action follows from the ids."""
    clock.advance(60)
    if reverts is not None:
        action = Action.ROLLBACK
    elif previous is None:
        action = Action.CREATE
    elif intent is None:
        action = Action.DELETE
    else:
        action = Action.EDIT if previous == intent else Action.RENAME
    return await store.record(
        file=file,
        action=action,
        author=author,
        before=OLD,
        after=NEW,
        intent_id=intent,
        previous_id=previous,
        summary=f"{previous} -> {intent}",
        reverts_id=reverts,
    )


async def test_a_recorded_revision_reads_back_as_kept(store: RevisionStore, clock: Clock) -> None:
    kept = await store.record(
        file="orders/shop.yaml",
        action=Action.RENAME,
        author="ann",
        before=OLD,
        after=NEW.replace("id: a", "id: b"),
        intent_id="b",
        previous_id="a",
        summary="clearer id",
    )

    assert kept == await store.get(kept.id)
    assert (kept.file, kept.intent_id, kept.previous_id, kept.action) == (
        "orders/shop.yaml",
        "b",
        "a",
        Action.RENAME,
    )
    assert (kept.author, kept.summary, kept.reverts_id, kept.created_at) == (
        "ann",
        "clearer id",
        None,
        clock.now,
    )
    assert (kept.before, kept.after) == (OLD, NEW.replace("id: a", "id: b"))


async def test_an_unknown_revision_is_refused_by_its_id(store: RevisionStore) -> None:
    with pytest.raises(StoreError, match="No intent revision 41"):
        await store.get(41)


@pytest.mark.parametrize(
    ("before", "after", "removed", "added"),
    [
        (OLD, NEW, ["-    answer: Old.\n"], ["+    answer: New.\n"]),
        ("", NEW, [], [f"+{line}" for line in NEW.splitlines(keepends=True)]),  # created
        (OLD, "", [f"-{line}" for line in OLD.splitlines(keepends=True)], []),  # removed
    ],
    ids=["edit", "created", "removed"],
)
async def test_the_diff_shows_the_change_of_the_file(
    store: RevisionStore, before: str, after: str, removed: list[str], added: list[str]
) -> None:
    kept = await store.record(
        file="shop.yaml",
        action=Action.EDIT,
        author="ann",
        before=before,
        after=after,
        intent_id="a",
    )

    lines = kept.diff.splitlines(keepends=True)
    assert lines[:2] == ["--- shop.yaml (before)\n", "+++ shop.yaml (after)\n"]
    body = [line for line in lines[2:] if not line.startswith("@@")]
    assert [line for line in body if line.startswith("-")] == removed
    assert [line for line in body if line.startswith("+")] == added


async def test_an_unchanged_file_has_an_empty_diff(store: RevisionStore) -> None:
    kept = await store.record(
        file="shop.yaml", action=Action.EDIT, author="ann", before=OLD, after=OLD, intent_id="a"
    )
    assert kept.diff == ""


async def test_recent_is_newest_first_and_finds_an_intent_under_either_name(
    store: RevisionStore, clock: Clock
) -> None:
    created = await change(store, clock, None, "a")
    other = await change(store, clock, None, "x", file="other.yaml")
    renamed = await change(store, clock, "a", "b")
    edited = await change(store, clock, "b", "b")

    assert [r.id for r in await store.recent()] == [edited.id, renamed.id, other.id, created.id]
    assert [r.id for r in await store.recent(limit=2)] == [edited.id, renamed.id]
    assert [r.id for r in await store.recent(intent_id="a")] == [renamed.id, created.id]
    assert [r.id for r in await store.recent(intent_id="b")] == [edited.id, renamed.id]
    assert await store.recent(intent_id="nowhere") == []


async def test_latest_for_file_is_the_newest_revision_of_that_file(
    store: RevisionStore, clock: Clock
) -> None:
    first = await change(store, clock, None, "a")
    second = await change(store, clock, "a", "a")
    elsewhere = await change(store, clock, None, "x", file="other.yaml")

    assert (await store.latest_for_file("shop.yaml")) == second != first
    assert (await store.latest_for_file("other.yaml")) == elsewhere
    assert await store.latest_for_file("nowhere.yaml") is None


async def test_reverted_names_the_rollback_of_a_revision(
    store: RevisionStore, clock: Clock
) -> None:
    edit = await change(store, clock, "a", "a")
    other = await change(store, clock, "a", "a")
    assert await store.reverted(edit.id) is None

    undo = await change(store, clock, "a", "a", author="bob", reverts=edit.id)

    assert await store.reverted(edit.id) == undo
    assert (undo.action, undo.reverts_id) == (Action.ROLLBACK, edit.id)
    assert await store.reverted(other.id) is None
    assert await store.reverted(undo.id) is None


# Each history: the (previous_id, intent_id) of its revisions in order, the ids in the files
# now, and what fates() says of the ids no longer there: the newest name, or None (deleted).
HISTORIES = {
    "edits only": ([(None, "a"), ("a", "a")], {"a"}, {}),
    "rename": ([(None, "a"), ("a", "b")], {"b"}, {"a": "b"}),
    "renames followed to the newest name": (
        [(None, "a"), ("a", "b"), ("b", "c")],
        {"c"},
        {"a": "c", "b": "c"},
    ),
    "deleted": ([(None, "a"), ("a", None)], set(), {"a": None}),
    "renamed, then deleted": (
        [(None, "a"), ("a", "b"), ("b", None)],
        set(),
        {"a": None, "b": None},
    ),
    "delete rolled back": ([(None, "a"), ("a", None), (None, "a")], {"a"}, {}),
    "rename rolled back": ([(None, "a"), ("a", "b"), ("b", "a")], {"a"}, {"b": "a"}),
    "an old name used again": ([(None, "a"), ("a", "b"), (None, "a")], {"a", "b"}, {}),
    "swapped names": (
        [(None, "a"), (None, "b"), ("a", "t"), ("b", "a"), ("t", "b")],
        {"a", "b"},
        {"t": "b"},
    ),
    "renamed, then gone by hand": ([(None, "a"), ("a", "b")], set(), {"a": None}),
}


@pytest.mark.parametrize(("history", "current", "expected"), HISTORIES.values(), ids=HISTORIES)
async def test_fates_follow_renames_and_deletes(
    store: RevisionStore,
    clock: Clock,
    history: Sequence[tuple[str | None, str | None]],
    current: set[str],
    expected: dict[str, str | None],
) -> None:
    for previous, intent in history:
        await change(store, clock, previous, intent)

    fates = await store.fates(frozenset(current))

    assert {old: fate.renamed_to for old, fate in fates.items()} == expected


async def test_a_fate_is_dated_by_its_last_step_and_described(
    store: RevisionStore, clock: Clock
) -> None:
    await change(store, clock, None, "a")
    await change(store, clock, "a", "b")
    last = await change(store, clock, "b", "c")
    deleted = await change(store, clock, None, "gone")
    deleted = await change(store, clock, "gone", None)

    fates = await store.fates({"c"})

    assert fates["a"] == Fate("c", last.created_at)
    assert fates["gone"] == Fate(None, deleted.created_at)
    assert fates["a"].describe("a") == "a (now c)"
    assert fates["gone"].describe("gone") == "gone (deleted)"


async def test_no_history_no_fates(store: RevisionStore) -> None:
    assert await store.fates({"a"}) == {}


def _migrate(connection: Connection, target: str, *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, target)


async def test_migration_0010_adds_and_removes_the_two_tables(database: Database) -> None:
    """(That the migrations build exactly the declared tables: tests/test_store.py.)"""
    tables = ("intent_revisions", "intent_proposals")

    async def present() -> set[str]:
        async with database.engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        return names & set(tables)

    assert await present() == set(tables)
    async with database.engine.begin() as conn:
        await conn.run_sync(_migrate, "0009", down=True)
    assert await present() == set()
    async with database.engine.begin() as conn:
        await conn.run_sync(_migrate, "head")
    assert await present() == set(tables)
