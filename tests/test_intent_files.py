"""Editing one intent in place: every byte outside its lines is kept, the file reads back as
written, stale saves and saves the check refuses leave the file untouched."""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from pathlib import Path

import pytest

from carebot.console.intent_files import IntentEditError, IntentFiles, StaleFileError
from carebot.console.intent_form import IntentForm
from carebot.nlu.intents import Intent, Severity, read_intents
from tests.conftest import ROOT

PLACEHOLDERS = {"shop_name": "Shop", "support_email": "help@example.com"}

HEAD = """\
# Test topic: comments, quoting styles and block scalars.
intents:
  # The first intent: a literal answer.
  - id: alpha
    title: "Alpha: the first"   # quoted for the colon
    tags: [one, two]
    examples:
      - what is alpha
      - 'alpha: tell me'
      - "how does \\"alpha\\" work"
    answer: |
      Alpha is first.
      It keeps its line breaks.

"""
BETA = """\
  - id: beta
    title: Beta
    handoff: false   # decided by legal
    examples:
      - what is beta
      # the one customers type most
      - beta please
      - is beta there
    # Ops: keep this answer short.
    answer: >-
      Beta is the second, at {shop_name}, and its answer is folded over
      two lines.
"""
TAIL = """\

# A list-level comment about gamma.
  - id: gamma
    examples:
      - gamma one
      - gamma two
      - gamma three
    answer: 'Gamma''s answer: plain enough'   # single quotes

out_of_scope:
  - what is the meaning of life
"""
COMMENTED = HEAD + BETA + TAIL


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "intents"
    directory.mkdir()
    (directory / "test.yaml").write_text(COMMENTED)
    (directory / "other.yaml").write_text(
        "intents:\n  - id: other\n    examples: [one other, two other, three other]\n"
        "    answer: Other.\n"
    )
    return directory


def files(directory: Path, placeholders: dict[str, str] = PLACEHOLDERS) -> IntentFiles:
    return IntentFiles(directory=directory, placeholders=placeholders)


def intents(directory: Path) -> dict[str, Intent]:
    found, problems = read_intents(directory, PLACEHOLDERS)
    assert [p for p in problems if p.severity is Severity.ERROR] == []
    return {i.id: dataclasses.replace(i, line=None) for i in found.intents}


def test_editing_one_intent_keeps_every_other_byte(folder: Path) -> None:
    editor, before = files(folder), intents(folder)
    beta = dataclasses.replace(
        before["beta"],
        examples=("what is beta", "beta please", "can I have beta: now"),
        answer="Beta changed, at {shop_name}.\n\nA second paragraph with 'quotes' # and a hash.",
    )
    editor.save(editor.read("test.yaml"), beta, replaces="beta")
    data, old = (folder / "test.yaml").read_bytes(), COMMENTED.encode()
    assert data[: len(HEAD)] == old[: len(HEAD)]
    assert data[len(data) - len(TAIL) :] == old[len(old) - len(TAIL) :]
    middle = data[len(HEAD) : len(data) - len(TAIL)].decode()
    assert "handoff: false   # decided by legal" in middle
    assert "    # Ops: keep this answer short.\n    answer: >-" in middle
    assert "      # the one customers type most\n      - beta please" in middle
    after = intents(folder)
    assert after["beta"] == dataclasses.replace(beta, line=None)
    assert {k: v for k, v in after.items() if k != "beta"} == {
        k: v for k, v in before.items() if k != "beta"
    }


def test_new_fields_take_their_place_and_unchanged_ones_keep_their_lines(folder: Path) -> None:
    editor = files(folder)
    gamma = dataclasses.replace(
        intents(folder)["gamma"], title="Gamma", tags=("g",), answer_threshold=0.85
    )
    editor.save(editor.read("test.yaml"), gamma, replaces="gamma")
    assert (folder / "test.yaml").read_text() == HEAD + BETA + TAIL.replace(
        "  - id: gamma\n",
        "  - id: gamma\n    title: Gamma\n    tags: [g]\n    answer_threshold: 0.85\n",
    )


def test_the_public_flags_are_written_and_read_back(folder: Path) -> None:
    editor = files(folder)
    gamma = dataclasses.replace(intents(folder)["gamma"], public=True, personal_data=True)
    editor.save(editor.read("test.yaml"), gamma, replaces="gamma")
    assert (folder / "test.yaml").read_text() == HEAD + BETA + TAIL.replace(
        "  - id: gamma\n", "  - id: gamma\n    public: true\n    personal_data: true\n"
    )
    assert intents(folder)["gamma"] == dataclasses.replace(gamma, line=None)
    form = IntentForm.posted({"id": "gamma", "file": "test.yaml", "examples": "hi", "public": "on"})
    made = form.intent()
    assert made is not None and (made.public, made.personal_data) == (True, False)


def test_a_comment_of_a_removed_example_is_reported_as_dropped(folder: Path) -> None:
    editor = files(folder)
    beta = dataclasses.replace(intents(folder)["beta"], examples=("what is beta", "is beta there"))
    edit = editor.save(editor.read("test.yaml"), beta, replaces="beta")
    assert edit.dropped_comments == ("# the one customers type most",)
    assert edit.warnings[0].message.startswith("beta: only 2 example(s)")


def test_create_appends_after_the_last_intent(folder: Path) -> None:
    editor = files(folder)
    new = Intent(id="delta", examples=("delta one", "delta two", "delta three"), answer="D.")
    editor.save(editor.read("test.yaml"), new, replaces=None)
    text = (folder / "test.yaml").read_text()
    rest = "\nout_of_scope:\n  - what is the meaning of life\n"
    assert text.startswith(COMMENTED[: -len(rest)])
    assert text.endswith(rest)
    added = text[len(COMMENTED) - len(rest) : -len(rest)]
    assert added == (
        "\n  - id: delta\n    examples:\n      - delta one\n      - delta two\n"
        "      - delta three\n    answer: |\n      D.\n"
    )
    assert intents(folder)["delta"] == dataclasses.replace(
        new, file=folder / "test.yaml", line=None
    )


def test_create_in_a_new_file(folder: Path) -> None:
    editor = files(folder)
    new = Intent(id="fresh", examples=("f one", "f two", "f three"), answer="F.", tags=("new",))
    editor.save(editor.read("fresh.yaml"), new, replaces=None)
    assert intents(folder)["fresh"].tags == ("new",)


def test_rename_and_delete_keep_the_other_bytes(folder: Path) -> None:
    editor = files(folder)
    renamed = dataclasses.replace(intents(folder)["beta"], id="beta_renamed")
    editor.save(editor.read("test.yaml"), renamed, replaces="beta")
    text = (folder / "test.yaml").read_text()
    assert text == HEAD + BETA.replace("id: beta\n", "id: beta_renamed\n") + TAIL
    editor.delete(editor.read("test.yaml"), "beta_renamed")
    assert (folder / "test.yaml").read_text() == HEAD + TAIL.removeprefix("\n")
    assert sorted(intents(folder)) == ["alpha", "gamma", "other"]


def test_a_stale_save_is_refused_with_the_diff(folder: Path) -> None:
    editor = files(folder)
    base = editor.read("test.yaml")
    theirs = COMMENTED.replace("      - gamma two\n", "      - gamma two, said someone else\n")
    (folder / "test.yaml").write_text(theirs)
    beta = dataclasses.replace(intents(folder)["beta"], title="Mine")
    with pytest.raises(StaleFileError) as refused:
        editor.save(base, beta, replaces="beta")
    assert "-      - gamma two\n+      - gamma two, said someone else\n" in refused.value.diff
    assert (folder / "test.yaml").read_text() == theirs


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"examples": ("what is beta", "one other")}, "is also an example of 'other'"),
        ({"answer": "See {nowhere}."}, "answer uses {nowhere}"),
        ({"id": "gamma"}, "duplicate id 'gamma'"),
        ({"answer_threshold": 1.5}, "answer_threshold must be a number from 0 to 1"),
    ],
)
def test_a_save_the_check_refuses_leaves_the_file_untouched(
    folder: Path, change: dict[str, object], error: str
) -> None:
    editor = files(folder)
    beta = dataclasses.replace(intents(folder)["beta"], **change)  # type: ignore[arg-type]
    with pytest.raises(IntentEditError, match="not saved") as refused:
        editor.save(editor.read("test.yaml"), beta, replaces="beta")
    assert error in str(refused.value)
    assert (folder / "test.yaml").read_bytes() == COMMENTED.encode()
    assert sorted(p.name for p in folder.iterdir()) == ["other.yaml", "test.yaml"]


@pytest.mark.parametrize(
    "hostile",
    [
        "Note: read this",
        "# not a comment",
        "it's \"quoted\" and 'single'",
        "line one\nline two",
        "- looks like a list",
        "[brackets], {braces}",
        "yes",
        "1.5",
        " leading space",
        "trailing colon:",
        "tab\there",
        "%percent @at `tick",
    ],
)
def test_hostile_values_round_trip(folder: Path, hostile: str) -> None:
    editor = files(folder)
    beta = dataclasses.replace(
        intents(folder)["beta"],
        title=hostile,
        tags=(hostile, "plain"),
        examples=(f"{hostile} beta".strip(), "beta please", "is beta there"),
        answer=hostile.strip().replace("{", "{{").replace("}", "}}") + "\nand a second line",
    )
    editor.save(editor.read("test.yaml"), beta, replaces="beta")
    assert intents(folder)["beta"] == dataclasses.replace(beta, line=None)
    text = (folder / "test.yaml").read_text()
    assert text.startswith(HEAD) and text.endswith(TAIL)


def test_a_flow_style_file_is_refused(folder: Path) -> None:
    flow = "intents: [{id: x, examples: [a b, c d, e f], answer: X.}]\n"
    (folder / "flow.yaml").write_text(flow)
    editor = files(folder)
    x = intents(folder)["x"]
    with pytest.raises(IntentEditError, match="no block-style 'intents:' list"):
        editor.save(editor.read("flow.yaml"), dataclasses.replace(x, title="X"), replaces="x")
    assert (folder / "flow.yaml").read_text() == flow


def test_the_write_is_atomic_and_keeps_the_mode(folder: Path) -> None:
    path = folder / "test.yaml"
    path.chmod(0o640)
    editor = files(folder)
    beta = dataclasses.replace(intents(folder)["beta"], title="New")
    editor.save(editor.read("test.yaml"), beta, replaces="beta")
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in folder.iterdir()) == ["other.yaml", "test.yaml"]


SHIPPED = sorted((ROOT / "intents").glob("*.yaml"))
SHIPPED_PLACEHOLDERS = tomllib.loads((ROOT / "config.toml").read_text())["placeholders"]


@pytest.mark.parametrize("shipped", SHIPPED, ids=[p.name for p in SHIPPED])
def test_editing_the_first_intent_of_a_shipped_file(tmp_path: Path, shipped: Path) -> None:
    folder = tmp_path / "intents"
    shutil.copytree(ROOT / "intents", folder)
    old = shipped.read_bytes()
    head = old[: old.index(b"  - id:")]
    tail = old[old.index(b"\n\n  - id:") :]
    editor = IntentFiles(directory=folder, placeholders=SHIPPED_PLACEHOLDERS)
    before, _ = read_intents(folder)
    first = next(i for i in before.intents if i.file == folder / shipped.name)
    changed = dataclasses.replace(
        first,
        examples=(*first.examples, "a new way to ask: with a colon"),
        answer=first.answer + ' One more sentence, said "plainly".',
    )
    editor.save(editor.read(shipped.name), changed, replaces=first.id)
    new = (folder / shipped.name).read_bytes()
    assert new.startswith(head) and new.endswith(tail)
    after, _ = read_intents(folder)
    expected = [changed if i.id == first.id else i for i in before.intents]
    assert [dataclasses.replace(i, line=None) for i in after.intents] == [
        dataclasses.replace(i, line=None) for i in expected
    ]
