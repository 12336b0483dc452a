"""The ONNX backend: export and its verification, the encoder, backend selection, and a serving
process that never imports torch. A tiny random BERT (made here, in seconds) stands in for the
real model, with mean and CLS pooling; test_real_model covers the packaged model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from carebot.config import Settings, load_settings
from carebot.exceptions import ModelError
from carebot.nlu.encoder import SentenceTransformerEncoder, resolve_model
from carebot.nlu.model_export import VERIFY_SENTENCES, export_model
from carebot.nlu.onnx_encoder import MANIFEST, Manifest, OnnxEncoder, export_problem
from carebot.runtime import EXPORT_NOTICE, load_encoder, onnx_folder
from tests.conftest import TEST_INTENTS, make_settings

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["where is my order", "  I want a REFUND!!  ", "hi", "Grüße 😡 " * 40]


def tiny_model(folder: Path, pooling: str, *, dense: bool = False) -> Path:
    """A 2-layer, 32-wide random BERT with the packaged model's tokenizer, as a
    sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(7)
    bert = folder / "bert"
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(bert)
    AutoTokenizer.from_pretrained(str(resolve_model("all-MiniLM-L6-v2"))).save_pretrained(bert)
    transformer = models.Transformer(str(bert), max_seq_length=64)
    modules = [transformer, models.Pooling(32, pooling_mode=pooling)]
    if dense:
        modules.append(models.Dense(32, 16))
    modules.append(models.Normalize())
    model = folder / f"st-{pooling}{'-dense' if dense else ''}"
    SentenceTransformer(modules=modules, device="cpu").save(str(model))
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    return {pooling: tiny_model(folder, pooling) for pooling in ("mean", "cls")}


@pytest.fixture(scope="module")
def exported(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "mean"
    export_model(str(models["mean"]), out)
    return out


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_an_export_gives_the_embeddings_of_sentence_transformers(
    models: dict[str, Path], tmp_path: Path, pooling: str
) -> None:
    said: list[str] = []
    manifest = export_model(str(models[pooling]), tmp_path / "out", say=said.append)
    assert (manifest.pooling, manifest.dimensions, manifest.max_seq_length) == (pooling, 32, 64)
    assert manifest.max_difference <= 1e-5 and len(manifest.sha256) == 64
    assert Manifest.read(tmp_path / "out") == manifest
    assert any("Verifying" in line for line in said)
    expected = SentenceTransformerEncoder(str(models[pooling])).encode(TEXTS)
    got = OnnxEncoder(tmp_path / "out").encode(TEXTS)
    assert got.shape == (len(TEXTS), 32) and got.dtype == np.float32
    assert float(np.max(np.abs(got - expected))) <= 1e-5
    assert OnnxEncoder(tmp_path / "out").encode([]).shape == (0, 32)


def test_an_export_that_does_not_match_is_refused_and_the_earlier_one_kept(
    models: dict[str, Path], exported: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = export_model(str(models["mean"]), out)
    with pytest.raises(ModelError, match="it was not written"):
        export_model(str(models["mean"]), out, tolerance=-1.0)  # nothing can be that close
    assert Manifest.read(out) == first
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # no half-written folder left


def test_a_model_tuned_by_intents_tune_exports(models: dict[str, Path], tmp_path: Path) -> None:
    from carebot.nlu.intents import Intent, IntentSet
    from carebot.nlu.tuning import TuneSettings, tune

    intents = IntentSet(
        (
            Intent("order_status", ("where is my order", "track my parcel"), "Track it."),
            Intent("refunds", ("where is my refund", "money back please"), "5 days."),
        )
    )
    settings = TuneSettings(epochs=1, batch=4, learning_rate=1e-3)
    tuned = tune(intents, str(models["mean"]), tmp_path / "tuned", settings=settings)
    manifest = export_model(str(tuned.folder), tmp_path / "out")
    assert manifest.max_difference <= 1e-5 and manifest.pooling == "mean"
    assert export_problem(tmp_path / "out", str(tuned.folder), None) is None


def test_a_model_with_other_layers_is_refused(tmp_path: Path) -> None:
    model = tiny_model(tmp_path, "mean", dense=True)
    with pytest.raises(ModelError, match=r"Dense.*only Transformer \+ Pooling"):
        export_model(str(model), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_missing_or_stale_export_is_explained(models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    subprocess.run(["cp", "-r", str(models["mean"]), str(model)], check=True)
    out = tmp_path / "out"
    assert "no ONNX export" in (export_problem(out, str(model), None) or "")
    export_model(str(model), out)
    assert export_problem(out, str(model), None) is None
    weights = next(model.rglob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert "stale" in (export_problem(out, str(model), None) or "")  # e.g. tuned again
    assert "stale" in (export_problem(out, str(models["cls"]), None) or "")


def onnx_settings(tmp_path: Path, model: Path, **matcher: object) -> Settings:
    return make_settings(tmp_path, matcher={"model": str(model), **matcher})


def test_the_configured_backend_is_used(models: dict[str, Path], tmp_path: Path) -> None:
    said: list[str] = []
    settings = onnx_settings(tmp_path, models["mean"], onnx_dir=str(tmp_path / "onnx"))
    fallback = load_encoder(settings, say=said.append)
    assert isinstance(fallback, SentenceTransformerEncoder)  # no export yet: said, and torch
    assert "no ONNX export" in said[0] and "carebot model export" in said[0]
    exported = load_encoder(settings, export_if_missing=True, say=said.append)
    assert isinstance(exported, OnnxEncoder) and (tmp_path / "onnx" / MANIFEST).exists()
    assert isinstance(load_encoder(settings), OnnxEncoder)
    torch_settings = onnx_settings(tmp_path, models["mean"], backend="torch")
    assert isinstance(load_encoder(torch_settings), SentenceTransformerEncoder)


def test_the_default_export_folder_is_named_after_the_model(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, matcher={"model": "sentence-transformers/all-MiniLM-L6-v2"})
    folder = onnx_folder(settings)
    assert folder.name == "sentence-transformers-all-MiniLM-L6-v2"
    assert folder.parent == settings.path(".carebot/onnx")


def test_serving_with_the_onnx_backend_never_imports_torch(
    models: dict[str, Path], exported: Path, tmp_path: Path
) -> None:
    """A fresh process builds the whole runtime, answers a message and imports every serving
    module; torch, sentence-transformers and transformers stay out of ``sys.modules``, and so
    does scikit-learn (insight's topics import it when they group: a worker starts, and
    restarts after a crash, a second sooner without it)."""
    config = tmp_path / "config.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [store]
            url = "sqlite+aiosqlite:///{tmp_path / "carebot.db"}"
            [matcher]
            model = "{models["mean"]}"
            onnx_dir = "{exported}"
            intents_dir = "{TEST_INTENTS}"
            cache_dir = "{tmp_path / "cache"}"
            [emotion]
            head = false
            [placeholders]
            tracking_url = "https://track.example"
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys, uuid
        from datetime import datetime, timezone
        import carebot.cli, carebot.cli.chat, carebot.server, carebot.platforms
        import carebot.adapters.telegram, carebot.adapters.meta, carebot.adapters.webhook
        from carebot.config import load_settings
        from carebot.models import InboundMessage
        from carebot.nlu.onnx_encoder import OnnxEncoder
        from carebot.runtime import build_runtime, load_encoder

        settings = load_settings({str(config)!r})
        encoder = load_encoder(settings)
        assert isinstance(encoder, OnnxEncoder), type(encoder)

        async def main():
            runtime = await build_runtime(settings, encoder=encoder)
            message = InboundMessage("cli", "u1", uuid.uuid4().hex, "where is my order",
                                     datetime.now(timezone.utc))
            outcome = await runtime.inbox.receive(message)
            await runtime.db.close()
            return outcome.decision.kind.value

        kind = asyncio.run(main())
        heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers", "sklearn")
                       if m in sys.modules)
        print(json.dumps({{"kind": kind, "heavy": heavy}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [] and result["kind"] in ("answer", "draft", "clarify", "handoff")


def fresh_folder(tmp_path: Path, model: Path, **matcher: str) -> Path:
    """A new user's folder: a config.toml with the intents, and no .carebot/ yet."""
    folder = tmp_path / "fresh"
    folder.mkdir()
    extra = "".join(f'{key} = "{value}"\n' for key, value in matcher.items())
    (folder / "config.toml").write_text(
        f'[matcher]\nmodel = "{model}"\nintents_dir = "{TEST_INTENTS}"\n{extra}'
        "[emotion]\nhead = false\n"  # the packaged head reads the real model's embeddings
        '[placeholders]\ntracking_url = "https://track.example"\n'
    )
    (folder / "test.csv").write_text(
        "text,intent\nwhere is my order,order_status\nhow do I return this,returns\n"
    )
    return folder


# Each command that encodes, as a new user runs it first: (arguments, input, what it prints).
FIRST_RUNS = {
    "chat": (["chat", "--explain"], "where is my order\n", "decision: "),
    "eval": (["eval", "--test", "test.csv"], "", "accuracy"),
    "intents-check": (["intents", "check"], "", " 0 error(s)"),
}


@pytest.mark.parametrize("command", FIRST_RUNS)
def test_a_command_in_a_fresh_folder_exports_the_model_once_and_never_loads_torch(
    models: dict[str, Path], tmp_path: Path, command: str
) -> None:
    """The first run exports the model in a child process (one line says so), then works on
    the ONNX export: torch is never imported by the command itself; the next run just starts."""
    from tests.test_cli import carebot

    args, stdin, shows = FIRST_RUNS[command]
    folder = fresh_folder(tmp_path, models["mean"])
    first = carebot(*args, cwd=folder, stdin=stdin)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stderr.splitlines() == [EXPORT_NOTICE], first.stderr  # the child's talk is kept
    assert shows in first.stdout and "HEAVY:\n" in first.stdout
    assert (onnx_folder(load_settings(folder / "config.toml")) / MANIFEST).exists()
    again = carebot(*args, cwd=folder, stdin=stdin)
    assert again.returncode == 0, again.stderr
    assert EXPORT_NOTICE not in again.stderr and "HEAVY:\n" in again.stdout


def test_the_torch_backend_of_the_config_still_chats_without_an_export(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from tests.test_cli import carebot

    folder = fresh_folder(tmp_path, models["mean"], backend="torch")
    result = carebot("chat", "--explain", cwd=folder, stdin="where is my order\n")
    assert result.returncode == 0, result.stderr
    assert "decision: " in result.stdout and "torch" in result.stdout.split("HEAVY:")[1]
    assert "Exporting" not in result.stderr and not (folder / ".carebot" / "onnx").exists()


def test_a_failed_first_export_says_why_and_writes_nothing(tmp_path: Path) -> None:
    model = tiny_model(tmp_path, "mean", dense=True)  # a layer the export does not handle
    folder = fresh_folder(tmp_path, model)
    settings = load_settings(folder / "config.toml")
    with pytest.raises(ModelError) as failed:
        load_encoder(settings, export_if_missing=True, say=lambda _: None)
    assert "failed; nothing was written. The export said:" in str(failed.value)
    assert "only Transformer + Pooling" in str(failed.value)
    assert not onnx_folder(settings).exists()


def test_the_verification_sentences_cover_what_customers_write() -> None:
    text = " ".join(VERIFY_SENTENCES)
    assert any(len(s) > 1000 for s in VERIFY_SENTENCES)  # past the model's length limit
    assert "😡" in text and "ö" in text and any(s != s.strip() for s in VERIFY_SENTENCES)
