"""The ``carebot`` command, run as a subprocess the way people run it (and ``carebot chat``'s
store in-process, with the fake encoder)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from carebot.adapters.terminal import TerminalChannel
from carebot.cli.chat import run_chat
from carebot.exceptions import DeliveryError
from carebot.models import OutboundReply
from carebot.store.database import MIGRATIONS, Database
from carebot.store.tables import Message
from tests.conftest import ROOT, TEST_INTENTS, make_settings
from tests.fakes import FakeEncoder

PROBE = """
import sys
from carebot.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
sys.exit(code)
"""


def carebot(
    *args: str, cwd: Path = ROOT, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def config(tmp_path: Path, intents: Path = TEST_INTENTS) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path}/db.sqlite"\n'
        f'[matcher]\nintents_dir = "{intents}"\n'
        '[placeholders]\ntracking_url = "https://t.example"\n'
    )
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["intents", "--help"],
        ["intents", "import", "--help"],
        ["eval", "--help"],
        ["chat", "--help"],
        ["db", "--help"],
        ["emotion", "--help"],
        ["emotion", "train", "--help"],
    ],
)
def test_help_does_not_import_torch(args: list[str]) -> None:
    result = carebot(*args)
    assert result.returncode == 0, result.stderr
    assert "usage: carebot" in result.stdout
    assert "HEAVY:\n" in result.stdout


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    result = carebot("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"carebot {version('carebot')}"


def test_intents_check_without_conflicts_is_fast_and_clean(tmp_path: Path) -> None:
    result = carebot("-c", str(config(tmp_path)), "intents", "check", "--no-conflicts")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s), 0 warning(s)" in result.stdout
    assert "HEAVY:\n" in result.stdout


def test_intents_check_exits_1_on_errors_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("intents:\n  - id: x\n    answer: hi\n")
    result = carebot("-c", str(config(tmp_path)), "intents", "check", str(bad), "--no-conflicts")
    assert result.returncode == 1
    assert f"{bad / 'x.yaml'}:2: error: x: missing required field 'examples'" in result.stdout


def test_intents_check_with_errors_does_not_load_the_model(tmp_path: Path) -> None:
    """The conflict analysis compares the examples with the model: it waits until the errors
    are fixed, so a typo is reported in a second, not after the model's first export."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("intents:\n  - id: x\n    examples:\n\t- hi\n")
    result = carebot("-c", str(config(tmp_path)), "intents", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad / 'x.yaml'}:4: error: YAML syntax: line 4 is indented with a tab" in result.stdout
    assert "The conflict analysis (which loads the model) runs once the errors are fixed." in (
        result.stdout
    )
    assert "HEAVY:\n" in result.stdout
    assert "Exporting" not in result.stderr


def test_chat_reports_broken_intents_before_loading_the_model(tmp_path: Path) -> None:
    result = carebot("-c", str(config(tmp_path, tmp_path / "none")), "chat", stdin="hi\n")
    assert result.returncode == 2
    assert "intents folder not found: create it" in result.stderr
    assert "HEAVY:\n" in result.stdout and "Exporting" not in result.stderr


def test_intents_import_does_not_load_the_model(tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("text,intent\nwhere is my order,order_status\nhello,oos\n")
    result = carebot("intents", "import", str(source), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "1 intents, 1 examples, 0 with an answer" in result.stdout
    assert "HEAVY:\n" in result.stdout
    check = carebot("intents", "check", str(tmp_path / "out"), "--no-conflicts")
    assert "0 error(s), 2 warning(s)" in check.stdout, check.stdout  # 1 example, no answer


def test_the_shipped_intents_pass_the_check_without_conflicts() -> None:
    result = carebot("intents", "check", "--no-conflicts")
    assert result.returncode == 0, result.stdout
    assert " 0 error(s)" in result.stdout


def test_db_upgrade_migrates_without_torch(tmp_path: Path) -> None:
    result = carebot("-c", str(config(tmp_path)), "db", "upgrade")
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert f"database at revision {head}" in result.stdout
    assert "HEAVY:\n" in result.stdout
    assert (tmp_path / "db.sqlite").exists()


def test_a_bad_config_is_reported_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[matcher]\ntop_k = 'three'\n")
    result = carebot("-c", str(path), "db", "upgrade")
    assert result.returncode == 2
    assert f"carebot: Invalid configuration:\n  {path}:2: [matcher] 'top_k'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def real_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model's ONNX export, made once for the tests that run the real model as
    people do (their own first-run export is tested with a tiny model in test_onnx)."""
    from carebot.nlu.model_export import export_model

    out = tmp_path_factory.mktemp("real-onnx") / "all-MiniLM-L6-v2"
    export_model("all-MiniLM-L6-v2", out)
    return out


def shipped_config(tmp_path: Path, onnx: Path) -> Path:
    """The shipped config.toml with the repository's intents and ``onnx`` as the export."""
    shipped = (ROOT / "config.toml").read_text()
    path = tmp_path / "config.toml"
    path.write_text(
        shipped.replace('intents_dir = "intents"', f'intents_dir = "{ROOT / "intents"}"').replace(
            'onnx_dir = ""', f'onnx_dir = "{onnx}"'
        )
    )
    return path


@pytest.mark.model
def test_chat_reads_piped_input_and_explains_each_turn(tmp_path: Path, real_export: Path) -> None:
    path = shipped_config(tmp_path, real_export)
    result = carebot(
        "-c",
        str(path),
        "chat",
        "--explain",
        stdin="where is my order?\nI am furious, third time I write and nobody helps!!!\nhello?\n",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    decisions = [line for line in lines if line.startswith("decision: ")]
    assert decisions[0].startswith("decision: answer intent=order_status score=")
    assert decisions[0].endswith("reason=confident")
    assert decisions[1].startswith("decision: handoff ")
    assert "reason=emotional" in decisions[1]
    # While the customer waits for a person, small talk gets the acknowledgement that a
    # colleague has the conversation, not the welcome (tests/test_waiting.py: the rest).
    assert decisions[2].startswith("decision: answer intent=greeting ")
    said = [line for line in lines if line.startswith("bot> ")]
    assert len(said) == 3 and "a colleague has your conversation" in said[2]
    assert not (tmp_path / ".carebot" / "carebot.db").exists()  # a throwaway store by default
    assert "HEAVY:\n" in result.stdout  # the ONNX export: torch never loaded


@pytest.mark.parametrize("store", [False, True], ids=["throwaway", "store"])
async def test_chat_keeps_the_conversation_only_with_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: bool
) -> None:
    """By default `carebot chat` talks into a temporary database deleted at exit, whatever
    [store] or CAREBOT_DATABASE_URL say: the live inbox never sees it. --store keeps it."""
    live = tmp_path / "live.db"
    monkeypatch.setenv("CAREBOT_DATABASE_URL", f"sqlite+aiosqlite:///{live}")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = io.StringIO()

    await run_chat(
        make_settings(tmp_path),
        store=store,
        stdin=io.StringIO("where is my order\n"),
        stdout=out,
        encoder=FakeEncoder(),
    )

    assert out.getvalue() == "bot> Track it at https://track.example.\n"
    assert list(scratch.iterdir()) == []  # the throwaway database is gone
    assert live.exists() is store
    if store:
        db = Database(f"sqlite+aiosqlite:///{live}")
        try:
            async with db.session() as session:
                assert await session.scalar(select(func.count()).select_from(Message)) == 2
        finally:
            await db.close()


async def test_a_reply_to_an_ended_terminal_session_is_refused_for_good() -> None:
    """With --store, replies left for an earlier `carebot chat` session fail once, with the
    reason, instead of being retried by every later chat."""
    channel = TerminalChannel(user="tess", stdin=io.StringIO(""), stdout=io.StringIO())
    earlier = OutboundReply(outbox_id=1, channel="terminal", external_user_id="tom", text="hi")
    with pytest.raises(DeliveryError, match="the terminal session of tom has ended") as refused:
        await channel.send(earlier)
    assert refused.value.permanent


@pytest.mark.model
def test_serve_answers_health_checks_and_stops_cleanly_on_sigterm(
    tmp_path: Path, real_export: Path
) -> None:
    import json
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = shipped_config(tmp_path, real_export)
    process = subprocess.Popen(
        [sys.executable, "-m", "carebot.cli", "-c", str(path), "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    ready = json.load(r)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        assert ready == {
            "ready": True,
            "checks": {"model": True, "outbox": True, "database": True, "migrations": True},
        }
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "inbox login:    agent / " in output  # no agents configured: a demo agent
    assert output.rstrip().endswith("Stopped.")


def test_a_slack_misconfiguration_stops_serve_before_the_model_loads(tmp_path: Path) -> None:
    result = carebot("-c", str(config(tmp_path)), "serve", env={"SLACK_BOT_TOKEN": "xoxb-1"})
    assert result.returncode == 2
    assert "[slack] 'channel' is empty, but SLACK_BOT_TOKEN is set" in result.stderr
    assert str(tmp_path / "config.toml") in result.stderr
    assert "HEAVY:\n" in result.stdout  # failed before torch was imported
