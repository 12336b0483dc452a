"""Publishing intent edits from the console: the file written and the change kept as a revision;
a rollback puts the file back, or is refused (the file untouched) when it would lose a later
change, when it was done already, or when the folder would not load as restored."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from carebot.console.intent_files import Edit, IntentEditError, IntentFiles, StaleFileError
from carebot.console.publishing import Publisher, RollbackError
from carebot.nlu.intents import Intent, IntentSet, read_intents
from carebot.store.database import Database
from carebot.store.intent_history import Action, Revision, RevisionStore
from tests.conftest import TEST_INTENTS, Clock

PLACEHOLDERS = {"tracking_url": "https://track.example"}
GIFTS = Intent(
    id="gift_cards",
    title="Gift cards",
    examples=("buy a gift card", "gift card balance", "redeem my gift card"),
    answer="Gift cards are sold in the shop.",
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "intents"
    shutil.copytree(TEST_INTENTS, directory)
    return directory


@pytest.fixture
def publisher(folder: Path, database: Database, clock: Clock) -> Publisher:
    return Publisher(
        files=IntentFiles(directory=folder, placeholders=PLACEHOLDERS),
        revisions=RevisionStore(database, clock=clock),
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file and subfolder of the folder (temporary files included) and its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else b"(folder)"
        for p in folder.rglob("*")
    }


def intents_in(folder: Path) -> dict[str, Intent]:
    found, _ = read_intents(folder, PLACEHOLDERS)
    return {i.id: i for i in found.intents}


def current(folder: Path) -> frozenset[str]:
    return frozenset(intents_in(folder))


# One published change of each action: (file, intent_id, previous_id, the edit).
Change = tuple[str, str | None, str | None, Callable[[IntentFiles, Path], Edit]]


def _edit(files: IntentFiles, folder: Path) -> Edit:
    refunds = dataclasses.replace(intents_in(folder)["refunds"], answer="Refunds take 3 days.")
    return files.plan_save(files.read("shop.yaml"), refunds, replaces="refunds")


def _rename(files: IntentFiles, folder: Path) -> Edit:
    money_back = dataclasses.replace(intents_in(folder)["refunds"], id="money_back")
    return files.plan_save(files.read("shop.yaml"), money_back, replaces="refunds")


def _create(files: IntentFiles, folder: Path) -> Edit:
    return files.plan_save(files.read("shop.yaml"), GIFTS, replaces=None)


def _create_file(files: IntentFiles, folder: Path) -> Edit:
    return files.plan_save(files.read("gifts/cards.yaml"), GIFTS, replaces=None)


def _delete(files: IntentFiles, folder: Path) -> Edit:
    return files.plan_delete(files.read("shop.yaml"), "refunds")


CHANGES: dict[str, tuple[Action, Change]] = {
    "edit": (Action.EDIT, ("shop.yaml", "refunds", "refunds", _edit)),
    "rename": (Action.RENAME, ("shop.yaml", "money_back", "refunds", _rename)),
    "create": (Action.CREATE, ("shop.yaml", "gift_cards", None, _create)),
    "create in a new file": (Action.CREATE, ("gifts/cards.yaml", "gift_cards", None, _create_file)),
    "delete": (Action.DELETE, ("shop.yaml", None, "refunds", _delete)),
}


async def publish(
    publisher: Publisher, folder: Path, name: str, *, author: str = "ann"
) -> tuple[Revision, Edit]:
    action, (_, intent_id, previous_id, plan) = CHANGES[name]
    edit = plan(publisher.files, folder)
    revision = await publisher.publish(
        edit,
        author=author,
        action=action,
        intent_id=intent_id,
        previous_id=previous_id,
        summary=name,
    )
    return revision, edit


@pytest.mark.parametrize("name", CHANGES)
async def test_a_published_change_is_written_and_kept_as_a_revision(
    publisher: Publisher, folder: Path, clock: Clock, name: str
) -> None:
    action, (file, intent_id, previous_id, _) = CHANGES[name]
    before = (folder / file).read_text() if (folder / file).exists() else ""

    revision, edit = await publish(publisher, folder, name)

    assert (folder / file).read_text() == edit.text == revision.after
    assert (revision.file, revision.action, revision.author, revision.summary) == (
        file,
        action,
        "ann",
        name,
    )
    assert (revision.intent_id, revision.previous_id, revision.before) == (
        intent_id,
        previous_id,
        before,
    )
    assert (revision.created_at, revision.reverts_id) == (clock.now, None)
    assert await publisher.revisions.get(revision.id) == revision
    # Written through a temporary file that is gone: only the intents files are there.
    assert sorted(snapshot(folder)) == sorted(
        {"shop.yaml", file} | ({"gifts"} if "/" in file else set())
    )
    # The edit carries the folder's intents as they read now, with their real files.
    assert {i.id: i.file for i in edit.intents.intents} == {
        i.id: i.file for i in intents_in(folder).values()
    }


@pytest.mark.parametrize("name", CHANGES)
async def test_a_rollback_puts_the_folder_back_as_it_was(
    publisher: Publisher, folder: Path, clock: Clock, name: str
) -> None:
    start = snapshot(folder)
    revision, _ = await publish(publisher, folder, name)
    clock.advance(300)

    undo = await publisher.rollback(revision.id, author="bob")

    assert snapshot(folder) == start  # a created file removed, with the folder made for it
    assert (undo.action, undo.author, undo.reverts_id, undo.file, undo.created_at) == (
        Action.ROLLBACK,
        "bob",
        revision.id,
        revision.file,
        clock.now,
    )
    assert (undo.before, undo.after) == (revision.after, revision.before)
    assert (undo.intent_id, undo.previous_id) == (revision.previous_id, revision.intent_id)
    assert undo.summary == f"rollback of revision {revision.id} ({name})"
    assert await publisher.revisions.reverted(revision.id) == undo


async def test_a_created_file_rolled_back_is_removed(publisher: Publisher, folder: Path) -> None:
    revision, _ = await publish(publisher, folder, "create in a new file")
    assert (folder / "gifts" / "cards.yaml").exists()

    await publisher.rollback(revision.id, author="bob")

    assert not (folder / "gifts" / "cards.yaml").exists()
    assert "gift_cards" not in current(folder)


async def test_a_revision_is_rolled_back_once(publisher: Publisher, folder: Path) -> None:
    revision, _ = await publish(publisher, folder, "edit")
    undo = await publisher.rollback(revision.id, author="bob")
    after_first = snapshot(folder)

    with pytest.raises(RollbackError) as refused:
        await publisher.rollback(revision.id, author="carl")

    assert str(refused.value) == (
        f"Revision {revision.id} was already rolled back by bob (revision {undo.id})"
    )
    assert snapshot(folder) == after_first
    assert [r.id for r in await publisher.revisions.recent()] == [undo.id, revision.id]


async def test_two_rollbacks_of_one_revision_at_once_do_it_once(
    publisher: Publisher, folder: Path
) -> None:
    revision, _ = await publish(publisher, folder, "edit")

    done = await asyncio.gather(
        publisher.rollback(revision.id, author="bob"),
        publisher.rollback(revision.id, author="carl"),
        return_exceptions=True,
    )

    [undo] = [r for r in done if isinstance(r, Revision)]
    [refused] = [r for r in done if isinstance(r, RollbackError)]
    assert str(refused) == (
        f"Revision {revision.id} was already rolled back by {undo.author} (revision {undo.id})"
    )
    assert intents_in(folder)["refunds"].answer == "Refunds take 5 days."


async def test_a_rollback_that_would_lose_a_later_revision_is_refused(
    publisher: Publisher, folder: Path
) -> None:
    first, _ = await publish(publisher, folder, "edit")
    later, _ = await publish(publisher, folder, "create", author="carl")
    published = snapshot(folder)

    with pytest.raises(RollbackError) as refused:
        await publisher.rollback(first.id, author="bob")

    assert str(refused.value) == (
        f"shop.yaml has changed since revision {first.id} (revision {later.id} by carl); "
        "roll back the newest change first, so that no later edit is lost"
    )
    assert snapshot(folder) == published
    assert await publisher.revisions.reverted(first.id) is None
    # Newest first, then the earlier one goes through.
    await publisher.rollback(later.id, author="bob")
    await publisher.rollback(first.id, author="bob")
    assert intents_in(folder)["refunds"].answer == "Refunds take 5 days."
    assert "gift_cards" not in current(folder)


async def test_a_later_revision_of_another_file_does_not_stop_a_rollback(
    publisher: Publisher, folder: Path
) -> None:
    first, _ = await publish(publisher, folder, "edit")
    await publish(publisher, folder, "create in a new file", author="carl")

    await publisher.rollback(first.id, author="bob")

    assert intents_in(folder)["refunds"].answer == "Refunds take 5 days."
    assert "gift_cards" in current(folder)


@pytest.mark.parametrize("after_a_later_revision", [False, True])
async def test_a_rollback_after_a_hand_edit_is_refused(
    publisher: Publisher, folder: Path, after_a_later_revision: bool
) -> None:
    first, _ = await publish(publisher, folder, "edit")
    newer = "an edit outside the console"
    if after_a_later_revision:
        later, _ = await publish(publisher, folder, "create", author="carl")
        newer = f"revision {later.id} by carl, and an edit outside the console after it"
    path = folder / "shop.yaml"
    by_hand = path.read_text().replace("Returns are free", "Returns cost nothing")
    path.write_text(by_hand)

    with pytest.raises(RollbackError) as refused:
        await publisher.rollback(first.id, author="bob")

    assert str(refused.value).startswith(
        f"shop.yaml has changed since revision {first.id} ({newer}); roll back the newest"
    )
    assert path.read_text() == by_hand


async def test_a_rollback_the_folder_would_not_load_after_is_refused(
    publisher: Publisher, folder: Path
) -> None:
    """Renamed away, then the old id used again in another file: the rename's rollback would
    give two intents one id."""
    greeting = intents_in(folder)["greeting"]
    files = publisher.files
    rename = files.plan_save(
        files.read("shop.yaml"), dataclasses.replace(greeting, id="hello"), replaces="greeting"
    )
    renamed = await publisher.publish(
        rename, author="ann", action=Action.RENAME, intent_id="hello", previous_id="greeting"
    )
    again = dataclasses.replace(
        greeting, examples=("good evening", "hey", "howdy"), file=None, line=None
    )
    await publisher.publish(
        files.plan_save(files.read("more.yaml"), again, replaces=None),
        author="carl",
        action=Action.CREATE,
        intent_id="greeting",
        previous_id=None,
    )
    published = snapshot(folder)

    with pytest.raises(RollbackError) as refused:
        await publisher.rollback(renamed.id, author="bob")

    assert "not restored: the folder would not load" in str(refused.value)
    assert "duplicate id 'greeting'" in str(refused.value)
    assert refused.value.problems and all("greeting" in p.message for p in refused.value.problems)
    assert snapshot(folder) == published
    assert await publisher.revisions.reverted(renamed.id) is None


async def test_a_stale_publish_is_refused_and_not_recorded(
    publisher: Publisher, folder: Path
) -> None:
    edit = _edit(publisher.files, folder)
    path = folder / "shop.yaml"
    path.write_text(path.read_text().replace("Returns are free", "Returns cost nothing"))

    with pytest.raises(StaleFileError):
        await publisher.publish(
            edit, author="ann", action=Action.EDIT, intent_id="refunds", previous_id="refunds"
        )

    assert "Returns cost nothing" in path.read_text()
    assert await publisher.revisions.recent() == []


@pytest.mark.parametrize(
    ("name", "fate_before", "fate_after"),
    [
        ("rename", {"refunds": "money_back"}, {"money_back": "refunds"}),
        ("delete", {"refunds": None}, {}),
        ("create", {}, {"gift_cards": None}),
    ],
)
async def test_fates_follow_changes_through_their_rollbacks(
    publisher: Publisher,
    folder: Path,
    name: str,
    fate_before: dict[str, str | None],
    fate_after: dict[str, str | None],
) -> None:
    revision, _ = await publish(publisher, folder, name)

    fates = await publisher.revisions.fates(current(folder))
    assert {old: f.renamed_to for old, f in fates.items()} == fate_before

    await publisher.rollback(revision.id, author="bob")

    fates = await publisher.revisions.fates(current(folder))
    assert {old: f.renamed_to for old, f in fates.items()} == fate_after


async def test_a_rollback_of_a_rollback_puts_the_change_back(
    publisher: Publisher, folder: Path
) -> None:
    revision, _ = await publish(publisher, folder, "rename")
    published = snapshot(folder)
    undo = await publisher.rollback(revision.id, author="bob")

    redo = await publisher.rollback(undo.id, author="ann")

    assert snapshot(folder) == published
    assert (redo.intent_id, redo.previous_id, redo.reverts_id) == ("money_back", "refunds", undo.id)
    fates = await publisher.revisions.fates(current(folder))
    assert {old: f.renamed_to for old, f in fates.items()} == {"refunds": "money_back"}


async def test_the_file_work_runs_where_it_is_told(
    folder: Path, database: Database, clock: Clock
) -> None:
    ran: list[str] = []

    async def in_thread(work: Callable[[], Edit]) -> Edit:
        ran.append("work")
        return work()

    publisher = Publisher(
        files=IntentFiles(directory=folder, placeholders=PLACEHOLDERS),
        revisions=RevisionStore(database, clock=clock),
        in_thread=in_thread,
    )
    revision, _ = await publish(publisher, folder, "edit")
    assert ran == ["work"]
    await publisher.rollback(revision.id, author="bob")
    assert ran == ["work", "work", "work"]  # the restore planned, then written


def test_plan_restore_checks_the_folder_as_it_would_be(folder: Path) -> None:
    files = IntentFiles(directory=folder, placeholders=PLACEHOLDERS)
    base = files.read("shop.yaml")
    text = base.text.replace("Refunds take 5 days.", "Refunds take {days} days.")

    with pytest.raises(IntentEditError, match=r"answer uses \{days\}"):
        files.plan_restore(base, text)

    restored = files.plan_restore(base, base.text.replace("5 days", "4 days"))
    assert restored.base == base and restored.dropped_comments == ()
    assert isinstance(restored.intents, IntentSet)
    refunds = restored.intents["refunds"]
    assert (refunds.answer, refunds.file) == ("Refunds take 4 days.", folder / "shop.yaml")
    assert files.read("shop.yaml") == base  # planned, not written

    with pytest.raises(IntentEditError, match="no intent files"):
        files.plan_restore(base, "")  # the folder's only file
    other = folder / "other.yaml"
    other.write_text("intents:\n  - id: other\n    examples: [a b, c d, e f]\n    answer: O.\n")
    gone = files.plan_restore(files.read("other.yaml"), "")
    assert (gone.text, "other" in gone.intents, len(gone.intents)) == ("", False, 7)
    assert other.exists()


def test_plan_restore_of_a_file_read_before_a_change_is_stale(folder: Path) -> None:
    files = IntentFiles(directory=folder, placeholders=PLACEHOLDERS)
    base = files.read("shop.yaml")
    (folder / "shop.yaml").write_text(base.text + "\n")
    with pytest.raises(StaleFileError):
        files.plan_restore(base, base.text)


@pytest.mark.parametrize(
    ("relative", "name"),
    [("shop.yaml", "shop.yaml"), ("gifts/cards.yaml", "gifts/cards.yaml"), ("a/../b.yml", "b.yml")],
)
def test_name_of_is_the_path_inside_the_folder(folder: Path, relative: str, name: str) -> None:
    files = IntentFiles(directory=folder, placeholders=PLACEHOLDERS)
    assert files.name_of(folder / relative) == name
    assert files.name_of(files.read(name).path) == name
