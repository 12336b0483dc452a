"""``carebot eval``: the scorecard through the real triage, with the fake bag-of-words encoder.

With that encoder a test text equal to an example scores 1.0 and one sharing no word scores
0.0, so every number below is known exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from carebot.cli import main
from carebot.nlu.intent_import import import_intents
from carebot.nlu.intents import Intent, IntentSet
from carebot.scorecard import HOLD_OUT, validation_split
from tests.fakes import FakeEncoder

TRAIN = """\
text,intent,answer
where is my order,order_status,Track it online.
track my order status,order_status,
order tracking number,order_status,
when is my refund coming,refunds,Refunds take 5 days.
refund money back,refunds,
refund not received,refunds,
when do you open,opening_hours,
opening hours today,opening_hours,
shop opening times,opening_hours,
tell me a joke,oos,
"""

# Three exact examples (answered, right); an out-of-scope row close to order_status (answered:
# wrong); one sharing no word with anything (not answered); an intent the bot does not know.
TEST = """\
text,intent
where is my order,order_status
refund money back,refunds
opening hours today,opening_hours
track my order,oos
the weather in paris,oos
pay my bill,billing
"""


@pytest.fixture
def intents_dir(tmp_path: Path) -> Path:
    source = tmp_path / "train.csv"
    source.write_text(TRAIN)
    import_intents(source, tmp_path / "intents")
    return tmp_path / "intents"


def run_eval(
    tmp_path: Path, intents: Path, test: str, *extra: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """``carebot eval`` in this process with the fake encoder: exit code, stdout, stderr."""
    config = tmp_path / "config.toml"
    config.write_text(  # the fake encoder's cosines are what the expected numbers reason in
        f'[matcher]\nmethod = "nearest"\ncache_dir = "{tmp_path / "cache"}"\n'
        "answer_threshold = 0.75\ndraft_threshold = 0.55\nclarify_margin = 0.04\n"
        "[emotion]\nhead = false\n"  # the head reads 384-dim MiniLM embeddings, not fake ones
    )
    test_file = tmp_path / "test.csv"
    test_file.write_text(test)
    argv = ["-c", str(config), "eval", "--intents", str(intents), "--test", str(test_file)]
    code = main([*argv, *extra], encoder=FakeEncoder())
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def card(tmp_path: Path, intents: Path, test: str, *extra: str, capsys: Any) -> dict[str, Any]:
    code, out, err = run_eval(tmp_path, intents, test, "--json", *extra, capsys=capsys)
    assert code == 0, err
    parsed: dict[str, Any] = json.loads(out)  # exactly one JSON object, nothing else
    return parsed


def test_json_scorecard_has_every_metric(
    tmp_path: Path, intents_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = card(tmp_path, intents_dir, TEST, capsys=capsys)
    assert result["accuracy"] == 3 / 4  # the unknown intent can only be wrong
    assert result["auto_precision"] == 3 / 4  # "track my order" (out of scope) was answered
    assert result["coverage"] == 4 / 6
    assert result["oos_recall"] == 1 / 2
    assert result["coverage_at"] == {"0.95": 0.5, "0.97": 0.5, "0.99": 0.5}
    assert result["confused_pairs"] == [
        {"true": "billing", "predicted": "order_status", "count": 1}
    ]
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["decisions"] == {"answer": 4, "clarify": 2}
    assert {k: result[k] for k in ("rows", "in_scope", "out_of_scope", "unknown_intent_rows")} == {
        "rows": 6,
        "in_scope": 4,
        "out_of_scope": 2,
        "unknown_intent_rows": 1,
    }
    assert (result["intents"], result["examples"], result["answerless_intents"]) == (3, 9, 1)
    assert result["thresholds"] == {"answer": 0.75, "draft": 0.55}
    assert "suggested" not in result


def test_nan_is_written_as_null(
    tmp_path: Path, intents_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = card(tmp_path, intents_dir, "text,intent\nthe weather in paris,oos\n", capsys=capsys)
    assert result["accuracy"] is None  # no in-scope rows: undefined, not zero
    assert result["auto_precision"] is None  # nothing answered
    assert result["oos_recall"] == 1.0


def test_the_table_reads_well(
    tmp_path: Path, intents_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_eval(tmp_path, intents_dir, TEST, capsys=capsys)
    assert code == 0
    assert "6 test rows: 4 in scope, 2 out of scope, 1 with an intent not in the intent set" in out
    assert "  accuracy (top-1, in scope)              0.750" in out
    assert "  coverage@0.97                           0.500" in out
    assert "  billing -> order_status: 1" in out


def test_suggested_thresholds_never_look_at_the_test_rows(
    tmp_path: Path, intents_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = card(tmp_path, intents_dir, TEST, "--target-precision", "0.9", capsys=capsys)
    other_test = "text,intent\nshop opening times,refunds\nrefund,oos\nhello,greeting\n"
    second = card(tmp_path, intents_dir, other_test, "--target-precision", "0.9", capsys=capsys)
    assert first["accuracy"] != second["accuracy"]
    assert first["suggested"] == second["suggested"]
    suggested = first["suggested"]
    # One held-out example per intent (20% of 3, at least 1) and the one out_of_scope text.
    assert (suggested["validation_rows"], suggested["validation_out_of_scope"]) == (4, 1)
    assert suggested["out_of_scope_share"] == 0.25
    assert 0 <= suggested["draft_threshold"] <= suggested["answer_threshold"] <= 1
    assert suggested["validation_precision"] >= 0.9
    assert suggested["warning"] is None


@pytest.mark.parametrize(("share", "rows", "out_of_scope"), [("0", 4, 1), ("0.5", 6, 3)])
def test_out_of_scope_texts_are_weighted_to_the_expected_share(
    tmp_path: Path,
    intents_dir: Path,
    capsys: pytest.CaptureFixture[str],
    share: str,
    rows: int,
    out_of_scope: int,
) -> None:
    extra = ("--target-precision", "0.9", "--oos-share", share)
    suggested = card(tmp_path, intents_dir, TEST, *extra, capsys=capsys)["suggested"]
    # 3 held-out examples; the one out_of_scope text counted 1 or 3 times (0 or 50% share)
    assert (suggested["validation_rows"], suggested["validation_out_of_scope"]) == (
        rows,
        out_of_scope,
    )


def test_without_out_of_scope_texts_the_suggestion_warns(
    tmp_path: Path, intents_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (intents_dir / "out_of_scope.yaml").unlink()
    code, out, _ = run_eval(tmp_path, intents_dir, TEST, "--target-precision", "0.9", capsys=capsys)
    assert code == 0
    assert "validation split of the intent examples (3 rows, 0 out of scope = 0.0%)" in out
    assert "warning: the intents have no out_of_scope texts" in out
    assert "  [matcher]\n  answer_threshold = " in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--target-precision", "1.5"), "--target-precision must be in (0, 1]"),
        ((), "no 'intent' column"),
    ],
)
def test_bad_arguments_and_files_are_errors_not_tracebacks(
    tmp_path: Path,
    intents_dir: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    test = TEST if extra else "text,label2\nhi,x\n"
    code, out, err = run_eval(tmp_path, intents_dir, test, *extra, capsys=capsys)
    assert (code, out) == (2, "")
    assert message in err and "Traceback" not in err


def test_the_validation_split_is_stratified_and_fixed() -> None:
    intents = IntentSet(
        (
            Intent("big", tuple(f"big {n}" for n in range(10))),
            Intent("pair", ("a", "b")),
            Intent("single", ("only",)),
        ),
        out_of_scope=("nope",),
    )
    rest, texts, labels, languages = validation_split(intents)
    assert set(languages) == {""}  # one language: the default's
    assert labels == ["big"] * round(10 * HOLD_OUT) + ["pair"]
    assert [len(i.examples) for i in rest.intents] == [8, 1, 1]
    assert rest["single"].examples == ("only",)
    for intent in intents.intents:  # held out + kept = all, nothing shared
        kept = set(rest[intent.id].examples)
        held = {t for t, label in zip(texts, labels, strict=True) if label == intent.id}
        assert kept | held == set(intent.examples) and not kept & held
    assert validation_split(intents) == (rest, texts, labels, languages)


PER_LANGUAGE = """\
intents:
  - id: order_status
    examples:
      en: [where is my order, track my order status, order tracking number]
      de: [wo ist meine bestellung, bestellung verfolgen bitte, sendungsnummer der bestellung]
    answer: Track it online.
  - id: refunds
    examples:
      en: [when is my refund coming, refund money back, refund not received]
      de: [wann kommt meine erstattung, geld zurück bitte, erstattung nicht erhalten]
    answer: Refunds take 5 days.
"""


@pytest.mark.parametrize("detect", [["en", "de"], []])
def test_eval_places_each_row_and_suggests_thresholds_per_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detect: list[str]
) -> None:
    """As the service does: a German row is decided with [languages.thresholds.de] and matched
    against the German examples (only when detect has German); and each language served gets
    its own suggestion, from its own examples."""
    folder = tmp_path / "intents"
    folder.mkdir()
    (folder / "shop.yaml").write_text(PER_LANGUAGE, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[matcher]\nmethod = "nearest"\ncache_dir = "{tmp_path / "cache"}"\n'
        "answer_threshold = 0.75\ndraft_threshold = 0.55\n[emotion]\nhead = false\n"
        f"[languages]\ndetect = {json.dumps(detect)}\n"
        "[languages.thresholds.de]\nanswer_threshold = 0.99\n"
    )
    test_file = tmp_path / "test.csv"
    test_file.write_text("text,intent\nwo ist meine bestellung heute,order_status\n")
    argv = ["-c", str(config), "eval", "--intents", str(folder), "--test", str(test_file)]
    code = main([*argv, "--json", "--target-precision", "0.9"], encoder=FakeEncoder())
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    if detect:  # 0.89 like "wo ist meine bestellung": a draft under German's 0.99
        assert result["decisions"] == {"draft": 1} and result["examples"] == 12
        assert set(result["suggested_by_language"]) == {"de"}
        assert result["suggested_by_language"]["de"]["validation_rows"] == 2
    else:  # not matched against the German examples, nor placed: English's thresholds
        assert result["decisions"] == {"clarify": 1} and result["examples"] == 6
        assert "suggested_by_language" not in result
    assert result["suggested"]["validation_rows"] == 2  # the English examples'
    assert main([*argv, "--target-precision", "0.9"], encoder=FakeEncoder()) == 0
    table = capsys.readouterr().out
    assert ("  [languages.thresholds.de]\n  answer_threshold = " in table) == bool(detect)
