from __future__ import annotations

from pathlib import Path

import pytest

from carebot.exceptions import IntentError
from carebot.nlu.intent_check import check_intents, conflicts
from carebot.nlu.intents import Intent, IntentSet, Severity, load_intents, read_intents
from tests.conftest import TEST_INTENTS
from tests.fakes import FakeEncoder

GOOD = """\
intents:
  - id: opening_hours
    examples:
      - when are you open
      - opening hours please
      - what time do you close
    answer: We are open {hours}.
"""


def folder(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def messages(directory: Path, **kwargs: object) -> list[str]:
    return [str(p) for p in check_intents(directory, placeholders={"hours": "9-5"}, **kwargs)]  # type: ignore[arg-type]


def test_test_intents_load() -> None:
    intents = load_intents(TEST_INTENTS, {"tracking_url": "x"})
    assert "order_status" in intents
    assert intents["account_deletion"].handoff is True
    assert intents["greeting"].answer_threshold == 0.9
    assert intents["order_status"].render_answer({"tracking_url": "T"}) == "Track it at T."


def test_a_good_file_has_no_problems(tmp_path: Path) -> None:
    assert messages(folder(tmp_path, **{"hours.yaml": GOOD})) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "intents:\n  - id: a\n    examples: [x, y\n",
            "a.yaml:3: error: YAML syntax: a '[' opened on line 3 is never closed with ']' "
            "(YAML: expected ',' or ']', but got '<stream end>')",
        ),
        (
            "intents:\n  - id: a\n    answer: hi\n",
            "a.yaml:2: error: a: missing required field 'examples'",
        ),
        (
            "intents:\n  - id: a\n    examples: [x, y, z]\n    answer: [no]\n",
            "a.yaml:4: error: a: answer must be text",
        ),
        (
            "intents: []\nout_of_scope:\n  - fine\n  - [not, text]\n",
            "a.yaml:4: error: out_of_scope entries must be non-empty texts",
        ),
        ("out_of_scope: nope\n", "a.yaml:1: error: 'out_of_scope:' must be a list (got 'nope')"),
        (
            "intents: []\nout_of_scpe: [x]\n",
            "a.yaml:2: error: unknown top-level key 'out_of_scpe' (the keys are: intents, "
            "out_of_scope)",
        ),
        (
            "intents:\n  - id: a\n    examples: where is my order\n",
            "a.yaml:3: error: a: examples must be a list: put each example on its own line",
        ),
        (
            "intents:\n  - id: a\n    exmaples: [x]\n    examples: [x, y, z]\n    answer: hi\n",
            "a.yaml:3: error: unknown field 'exmaples'",
        ),
        ("intents:\n  - id: a b\n    examples: [x, y, z]\n    answer: hi\n", "must be a word"),
        (
            "intents:\n  - id: a\n    examples: [x, y, z]\n    answer: hi\n"
            "    answer_threshold: 2\n",
            "a.yaml:5: error: answer_threshold must be a number from 0 to 1",
        ),
        (
            "intents:\n  - id: a\n    examples: [x, y, z]\n    answer: hi {nope}\n",
            "answer uses {nope}, which is not defined under [placeholders]",
        ),
        ("- id: a\n", "expected a top-level 'intents:' list"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    found = messages(folder(tmp_path, **{"a.yaml": text}))
    assert any(expected in line for line in found), found


HOURS = "intents:\n  - id: hours\n    examples:\n"
INDENTATION = "list items under `examples:` start with '- ' indented the same"
NOT_CLOSED = "is never closed: end the text with the same quote, or leave the quotes out"


# The YAML mistakes people make, each in a small broken file: the line to look at and the hint.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            HOURS + "      - when are you open\n     - opening hours\n    answer: 9-5\n",
            [f"a.yaml:5: error: YAML syntax: check the indentation of line 5: {INDENTATION}"],
            id="item-indented-less",
        ),
        pytest.param(
            HOURS + "      - when are you open\n    - opening hours\n    answer: 9-5\n",
            [f"a.yaml:5: error: YAML syntax: check the indentation of line 5: {INDENTATION}"],
            id="item-at-the-fields-level",
        ),
        pytest.param(
            HOURS + "      - when are you open\n      answer: 9-5\n",
            [f"a.yaml:5: error: YAML syntax: check the indentation of line 5: {INDENTATION}"],
            id="field-indented-as-an-item",
        ),
        pytest.param(
            HOURS + "      - when are you open\n    answer 9-5\n  - id: b\n",
            ["a.yaml:5: error: YAML syntax: line 5 needs ':' after its field name"],
            id="colon-missing",
        ),
        pytest.param(
            HOURS + "      - when are you open\n    answer: Open: 9 to 5\n",
            [
                "a.yaml:5: error: YAML syntax: the text on line 5 holds ': ', which YAML reads "
                'as a new field: put the whole text in quotes, like answer: "Open: 9 to 5" '
                "(YAML: mapping values are not allowed here)"
            ],
            id="colon-in-a-text",
        ),
        pytest.param(
            HOURS + '      - "when are you open\n      - opening hours\n    answer: 9-5\n',
            [f"a.yaml:4: error: YAML syntax: a quote opened on line 4 {NOT_CLOSED}"],
            id="quote-open-to-the-end",
        ),
        pytest.param(
            HOURS + '      - "when are you open\n      - "opening hours"\n    answer: 9-5\n',
            [f"a.yaml:4: error: YAML syntax: a quote opened on line 4 {NOT_CLOSED}"],
            id="quote-open-to-the-next-quote",
        ),
        pytest.param(
            HOURS + "      - when are you open\n    answer: 'Nine to five\n",
            [f"a.yaml:5: error: YAML syntax: a quote opened on line 5 {NOT_CLOSED}"],
            id="single-quote",
        ),
        pytest.param(
            HOURS + "\t- when are you open\n\t- opening hours\n    answer: 9-5\n",
            [
                f"a.yaml:{n}: error: YAML syntax: line {n} is indented with a tab; YAML allows "
                "only spaces there: replace the tab with spaces"
                for n in (4, 5)
            ],
            id="tabs-every-line",
        ),
        pytest.param(
            HOURS + "      - when are you open\n    answer: one\n    answer: two\n",
            ["a.yaml:6: error: YAML syntax: 'answer' is given twice (lines 5 and 6): keep one"],
            id="field-twice",
        ),
    ],
)
def test_yaml_mistakes_get_the_line_and_a_hint(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    found = messages(folder(tmp_path, **{"a.yaml": text}))
    shown = [line.removeprefix(f"{tmp_path}/") for line in found]
    assert len(shown) == len(expected), shown
    assert [line[: len(e)] for line, e in zip(shown, expected, strict=True)] == expected, shown


def test_every_error_of_every_file_is_reported_in_one_run(tmp_path: Path) -> None:
    """A file with a syntax error stops there; every other file is read to the end, each of
    its errors with its line, in the order of the file."""
    broken = HOURS + '      - "when are you open\n    answer: 9-5\n'
    wrong = (
        "intents:\n"
        "  - id: a\n"
        "    examples: where is my order\n"
        "  - id: b b\n"
        "    exmaples: [hi]\n"
        "  - id: c\n"
        "    examples: [x, y, z]\n"
        "    answer_threshold: 2\n"
        "    handoff: maybe\n"
        "out_of_scope: nope\n"
    )
    directory = folder(tmp_path, **{"a.yaml": broken, "b.yaml": wrong, "c.yaml": GOOD})
    problems = check_intents(directory, placeholders={"hours": "9-5"}, encoder=_no_model)
    expected = [
        ("a.yaml", 4, "YAML syntax: a quote opened on line 4 is never closed"),
        ("b.yaml", 3, "a: examples must be a list"),
        ("b.yaml", 4, "b b: missing required field 'examples'"),
        ("b.yaml", 4, "id 'b b' must be a word"),
        ("b.yaml", 5, "unknown field 'exmaples'"),
        ("b.yaml", 8, "answer_threshold must be a number from 0 to 1 (got 2)"),
        ("b.yaml", 9, "handoff must be true or false (got 'maybe')"),
        ("b.yaml", 10, "'out_of_scope:' must be a list (got 'nope')"),
    ]
    assert len(problems) == len(expected), problems
    found = [
        (p.file.name, p.line, p.message[: len(e[2])])
        for p, e in zip(problems, expected, strict=True)
    ]
    assert found == expected, problems


def _no_model() -> FakeEncoder:
    raise AssertionError("the conflict analysis waits until the errors are fixed")


def test_duplicate_ids_and_shared_examples_across_files(tmp_path: Path) -> None:
    same_id = GOOD.replace("when are you open", "opening times")
    other = GOOD.replace("opening_hours", "shop_hours").replace("when are", "When  are")
    found = messages(folder(tmp_path, **{"a.yaml": GOOD, "b.yaml": same_id, "c.yaml": other}))
    assert any("b.yaml:2: error: duplicate id 'opening_hours'" in f for f in found), found
    shared = "c.yaml:4: error: example 'When  are you open' of 'shop_hours' is also an example of "
    assert any(shared + "'opening_hours' (" in f and "a.yaml:4)" in f for f in found), found


def test_few_examples_is_a_warning_not_an_error(tmp_path: Path) -> None:
    text = "intents:\n  - id: a\n    examples: [x, y]\n    answer: hi\n"
    problems = check_intents(folder(tmp_path, **{"a.yaml": text}), placeholders={})
    assert [p.severity for p in problems] == [Severity.WARNING]
    assert "only 2 example(s)" in problems[0].message


def test_conflicting_examples_are_listed_with_both_scores(tmp_path: Path) -> None:
    text = (
        GOOD
        + """\
  - id: delivery
    examples:
      - delivery time please
      - how long is delivery
      - what time do you close on delivery
    answer: Two days.
"""
    )
    found = messages(folder(tmp_path, **{"a.yaml": text}), encoder=FakeEncoder)
    conflict = [f for f in found if "is closer to" in f]
    expected = (
        "a.yaml:12: warning: example 'what time do you close on delivery' of 'delivery' is "
        "closer to 'opening_hours' ('what time do you close': 0."
    )
    assert any(expected in line for line in conflict), conflict


def test_load_intents_raises_with_every_error(tmp_path: Path) -> None:
    directory = folder(tmp_path, **{"a.yaml": "intents:\n  - id: a\n", "b.yaml": "intents: [1"})
    with pytest.raises(IntentError) as error:
        load_intents(directory)
    assert "a.yaml:2" in str(error.value) and "b.yaml" in str(error.value)


def test_missing_folder(tmp_path: Path) -> None:
    _, problems = read_intents(tmp_path / "none")
    assert "intents folder not found" in str(problems[0])


def test_an_intent_without_an_answer_loads_and_the_check_warns(tmp_path: Path) -> None:
    text = "intents:\n  - id: a\n    examples: [x, y, z]\n"
    directory = folder(tmp_path, **{"a.yaml": text})
    assert load_intents(directory)["a"].answer == ""
    assert messages(directory) == [
        f"{directory / 'a.yaml'}:2: warning: a: no answer yet: it can be evaluated but will be "
        "handed to a person instead of answered"
    ]


def test_out_of_scope_texts_are_kept_apart_from_the_intents(tmp_path: Path) -> None:
    directory = folder(
        tmp_path,
        **{
            "hours.yaml": GOOD + "out_of_scope:\n  - what is the weather\n",
            "oos.yaml": "out_of_scope:\n  - tell me a joke\n  - when are you open\n",
        },
    )
    intents = load_intents(directory, {"hours": "9-5"})
    assert intents.out_of_scope == ("what is the weather", "tell me a joke", "when are you open")
    assert "what is the weather" not in intents.examples()[0]
    assert len(intents) == 1
    assert messages(directory) == [
        f"{directory / 'oos.yaml'}:3: warning: out-of-scope text 'when are you open' is also an "
        f"example of 'opening_hours' ({directory / 'hours.yaml'}:2); evaluation counts it as "
        "out of scope"
    ]


def test_an_intent_set_is_still_built_from_intents_alone() -> None:
    intents = IntentSet((Intent("a", ("x",), "hi"), Intent("b", ("y",))))
    assert intents.out_of_scope == ()
    assert intents["b"].answer == ""


@pytest.mark.parametrize("edited", ["order_status", "opening_hours", "returns", "greeting"])
def test_the_conflicts_of_one_intent_are_those_of_the_whole_check_that_concern_it(
    edited: str,
) -> None:
    """An edit checks one intent's conflicts (its examples against all, and the examples that
    come closer to it than to their own) without the folder's square matrix: exactly what the
    whole analysis says about them."""
    intents, _ = read_intents(Path(__file__).parent.parent / "intents", {})
    encoder = FakeEncoder()
    whole = {p.message for p in conflicts(intents, encoder)}
    some = {p.message for p in conflicts(intents, encoder, only={edited})}

    def concerns(message: str) -> bool:
        return f" of {edited!r} " in message or f"closer to {edited!r}" in message

    assert some <= whole
    assert {m for m in whole if concerns(m)} <= some
    assert any(concerns(m) for m in whole) or edited == "greeting"


def test_check_warns_of_public_intents_that_could_never_be_answered_in_public(
    tmp_path: Path,
) -> None:
    text = """intents:
  - id: contact
    public: true
    examples: [how do I reach you, your email please, contact details]
    answer: Write to {mail}.
  - id: hours
    public: true
    examples: [when are you open, opening hours, are you open today]
    answer: We are open 9-5.
  - id: where
    public: true
    personal_data: true
    examples: [where is my parcel, parcel not here, track parcel]
    answer: Send us your order number.
"""
    from carebot.config import PublicSettings
    from carebot.public.posting import public_guard

    problems = check_intents(
        folder(tmp_path, **{"a.yaml": text}),
        placeholders={"mail": "care@shop.example"},
        public_guard=public_guard(PublicSettings()),
    )
    found = [p.message for p in problems]
    assert len(found) == 2 and all("marked public: true" in m for m in found)
    assert "guard refuses" in found[0] and "e-mail address" in found[0]
    assert "personal_data: true" in found[1]
    allowed = public_guard(PublicSettings(own_contact_details=("care@shop.example",)))
    problems = check_intents(
        tmp_path,
        placeholders={"mail": "care@shop.example"},
        public_guard=allowed,
    )
    assert [p.message.split(":")[0] for p in problems] == ["where"]
