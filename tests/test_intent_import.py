"""``carebot intents import``: CSV and CLINC150-style JSON in, loadable intent files out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carebot.cli import main
from carebot.exceptions import DataError
from carebot.nlu.intent_import import (
    OUT_OF_SCOPE_FILE,
    TEST_KEYS,
    group_files,
    import_intents,
    read_labelled,
)
from carebot.nlu.intents import load_intents, read_intents


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("csv_text", "answers"),
    [
        ("text,intent\nwhere is my order,order_status\nrefund please,refunds\n", {}),
        (
            "text,intent,answer\nwhere is my order,order_status,\n"
            "track my parcel,order_status,Track it online.\n"
            "my order?,order_status,Ignored: the first answer wins.\n"
            "refund please,refunds,Five days.\n",
            {"order_status": "Track it online.", "refunds": "Five days."},
        ),
        (
            "id,category,text,source\n1,order_status,where is my order,web\n"
            "2,refunds,refund please,mail\n",
            {},
        ),
    ],
    ids=["plain", "answer-column", "extra-columns-and-category"],
)
def test_csv_import_round_trips_through_the_loader(
    tmp_path: Path, csv_text: str, answers: dict[str, str]
) -> None:
    out = tmp_path / "intents"
    result = import_intents(write(tmp_path, "data.csv", csv_text), out)
    assert result.files == [out / "imported.yaml"]
    intents = load_intents(out)
    assert [i.id for i in intents.intents] == ["order_status", "refunds"]
    assert intents["order_status"].examples[0] == "where is my order"
    assert {i.id: i.answer for i in intents.intents if i.answer} == answers
    assert intents.out_of_scope == ()


def test_out_of_scope_rows_duplicates_and_names(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "data.csv",
        "text,intent\n"
        "where is my order,Order Status\n"
        "what is the weather,oos\n"
        "tell me a joke,\n"
        "Where  is my ORDER,refunds\n"  # the same text under another intent: dropped
        "where is my order,order_status\n"  # the same text again: dropped
        ",refunds\n"  # no text: skipped
        "refund please,1st refund\n",
    )
    out = tmp_path / "intents"
    result = import_intents(source, out)
    assert (result.duplicates, result.conflicting, result.empty_texts) == (2, 1, 1)
    assert result.renamed == {"Order Status": "order_status", "1st refund": "intent_1st_refund"}
    assert (out / OUT_OF_SCOPE_FILE).read_text().splitlines()[-3:] == [
        "out_of_scope:",
        "  - what is the weather",
        "  - tell me a joke",
    ]
    intents = load_intents(out)
    assert intents.out_of_scope == ("what is the weather", "tell me a joke")
    assert intents.examples() == (
        ["where is my order", "refund please"],
        ["order_status", "intent_1st_refund"],
    )


def test_tricky_texts_survive_the_yaml(tmp_path: Path) -> None:
    texts = ["no", "123", "a: b # c", "- dash", 'it\'s "quoted"', "ünïcode?", "{braces}"]
    rows = "".join(f'"{t.replace(chr(34), chr(34) * 2)}",x\n' for t in texts)
    import_intents(write(tmp_path, "data.csv", "text,intent\n" + rows), tmp_path / "out")
    assert load_intents(tmp_path / "out")["x"].examples == tuple(texts)


def clinc(**splits: list[list[str]]) -> str:
    return json.dumps(splits, indent=1)


def test_clinc_json_takes_train_and_oos_train(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "data_full.json",
        clinc(
            train=[["what is my balance", "balance"], ["how much money do i have", "balance"]],
            oos_train=[["who won the game", "oos"]],
            val=[["balance please", "balance"]],
            test=[["my balance", "balance"]],
        ),
    )
    result = import_intents(source, tmp_path / "out")
    assert (result.examples, len(result.out_of_scope)) == (2, 1)
    intents = load_intents(tmp_path / "out")
    assert intents["balance"].examples == ("what is my balance", "how much money do i have")
    assert intents.out_of_scope == ("who won the game",)
    test_rows = read_labelled(source, TEST_KEYS).rows
    assert [(r.text, r.intent, r.where) for r in test_rows] == [
        ("my balance", "balance", "test[0]")
    ]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.csv", "words,label2\nhi,x\n", "a.csv:1: no 'text' column (columns: words, label2)"),
        ("a.csv", "text,topic\nhi,x\n", "a.csv:1: no 'intent' column (columns: text, topic)"),
        ("a.csv", "", "a.csv: empty file; expected a header row 'text,intent'"),
        ("a.csv", "text,intent\nhi,x\nho,???\n", "a.csv: line 3: intent '???' has no letters"),
        ("a.csv", 'text,intent\nhi,x\n"unclosed,x\n', "a.csv:3: not valid CSV"),
        ("a.json", '{"train": [["hi", "x"],\n  oops]}', "a.json:2: not valid JSON"),
        (
            "a.json",
            '{"test": [], "val": []}',
            "a.json: expected a JSON object with the key 'train' (and optionally 'oos_train') "
            "holding [text, intent] pairs, as in CLINC150; keys found: 'test', 'val'",
        ),
        ("a.json", '{"train": [["hi", "x"], ["ho"]]}', "a.json: train[1]: expected [text, intent]"),
    ],
)
def test_bad_input_names_the_file_and_row(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    with pytest.raises(DataError) as error:
        import_intents(write(tmp_path, name, text), tmp_path / "out")
    assert expected in str(error.value)
    assert str(tmp_path / name) in str(error.value)


def test_an_unreadable_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"none\.csv: cannot read the file"):
        import_intents(tmp_path / "none.csv", tmp_path / "out")


def test_existing_files_are_kept_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path, "data.csv", "text,intent\nhi,greeting\nbye,oos\n")
    out = tmp_path / "out"
    assert main(["intents", "import", str(source), "--out", str(out)]) == 0
    (out / "imported.yaml").write_text("# edited by hand\n")
    assert main(["intents", "import", str(source), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "would overwrite 2 file(s) (imported.yaml, out_of_scope.yaml); use --force" in error
    assert (out / "imported.yaml").read_text() == "# edited by hand\n"
    assert main(["intents", "import", str(source), "--out", str(out), "--force"]) == 0
    assert load_intents(out)["greeting"].examples == ("hi",)


def test_the_summary_says_what_was_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "text,intent,answer\nhi,Greeting,Hello!\nho,greeting,\nx,oos,\n"
    source = write(tmp_path, "d.csv", rows)
    assert main(["intents", "import", str(source), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "1 intents, 2 examples, 1 with an answer" in out
    assert "1 out-of-scope texts" in out
    assert "1 intent names made into ids: 'Greeting' -> 'greeting'" in out
    assert f"Wrote 2 file(s) to {tmp_path / 'o'}" in out


def test_a_large_set_is_split_by_id_prefix(tmp_path: Path) -> None:
    ids = [f"card_{n}" for n in "abc"] + ["top_up_failed", "top_up_limits"]
    ids += [f"topic{n}" for n in range(20)]
    files = group_files(ids)
    assert files["card.yaml"] == ["card_a", "card_b", "card_c"]
    assert files["top.yaml"] == ["top_up_failed", "top_up_limits"]
    assert files["topic7.yaml"] == ["topic7"]
    assert group_files(ids[:20]) == {"imported.yaml": ids[:20]}
    rows = "".join(f"example for {i},{i}\n" for i in ids)
    import_intents(write(tmp_path, "d.csv", "text,intent\n" + rows), tmp_path / "out")
    intents, problems = read_intents(tmp_path / "out")
    assert problems == [] and len(intents) == len(ids)
    assert intents["card_b"].file == tmp_path / "out" / "card.yaml"
