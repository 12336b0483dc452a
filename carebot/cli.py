"""The ``carebot`` command. Heavy imports (torch, the model) happen inside the commands that
need them, so ``carebot --help``, ``intents check --no-conflicts`` and ``db upgrade`` stay fast."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from carebot import library_logs
from carebot.exceptions import CarebotError

if TYPE_CHECKING:
    from carebot.nlu.encoder import Encoder


def main(argv: list[str] | None = None, *, encoder: Encoder | None = None) -> int:
    """Run one command. ``encoder`` replaces the configured model (tests inject a fake one)."""
    args = _parser().parse_args(argv)
    args.encoder = encoder
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose > 1
        else logging.INFO
        if args.verbose
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    library_logs.protect()  # the libraries' loggers write customer data at DEBUG only
    try:
        return int(args.command(args) or 0)
    except CarebotError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carebot",
        description="Customer care on social channels: answers the repetitive questions, "
        "hands the rest to people.",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="config file (default: ./config.toml if present, else built-in defaults)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more logging (-vv: debug, which includes customer text)",
    )
    parser.set_defaults(command=lambda _args: parser.print_help())
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve(commands)
    _add_chat(commands)
    _add_intents(commands)
    _add_eval(commands)
    _add_inbox(commands)
    _add_db(commands)
    _add_model(commands)
    _add_emotion(commands)
    return parser


def _group(commands: Commands, name: str, help: str) -> Commands:
    """A command that only groups subcommands; alone, it prints its help."""
    group = commands.add_parser(name, help=help)
    group.set_defaults(command=lambda _args: group.print_help())
    return group.add_subparsers(title=f"{name} commands", metavar="COMMAND")


def _add_serve(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve", help="run the service: web chat, agent inbox, health checks"
    )
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [server] port)")
    serve.set_defaults(command=_serve)


def _add_chat(commands: Commands) -> None:
    chat = commands.add_parser("chat", help="talk to the bot as a customer (reads piped input too)")
    chat.add_argument(
        "--explain", action="store_true", help="print the decision line after each bot turn"
    )
    chat.add_argument("--user", help="customer id to chat as (default: a new visitor each run)")
    chat.set_defaults(command=_chat)


def _add_intents(commands: Commands) -> None:
    intents = _group(commands, "intents", "work with the FAQ intents")
    check = intents.add_parser("check", help="validate intent files (exit 1 on errors)")
    check.add_argument(
        "directory", nargs="?", type=Path, help="intents folder (default: [matcher] intents_dir)"
    )
    check.add_argument(
        "--no-conflicts",
        action="store_true",
        help="skip the conflict analysis (does not load the model)",
    )
    check.set_defaults(command=_intents_check)
    load = intents.add_parser(
        "import",
        help="make intent files from labelled data (CSV text,intent or CLINC150-style JSON)",
    )
    load.add_argument("file", type=Path, help="CSV (text,intent[,answer]) or JSON (train keys)")
    load.add_argument("--out", type=Path, required=True, help="folder to write the intents to")
    load.add_argument("--force", action="store_true", help="overwrite existing files")
    load.set_defaults(command=_intents_import)
    tune = intents.add_parser(
        "tune", help="fine-tune the sentence model on the intents, into a model folder"
    )
    tune.add_argument("--out", type=Path, required=True, help="folder for the tuned model")
    tune.add_argument(
        "--intents", type=Path, help="intents folder (default: [matcher] intents_dir)"
    )
    tune.add_argument("--epochs", type=int, default=2, help="passes over the examples (2)")
    tune.set_defaults(command=_intents_tune)


def _add_eval(commands: Commands) -> None:
    evaluate = commands.add_parser(
        "eval", help="score the intents on labelled test messages through the real triage"
    )
    evaluate.add_argument(
        "--intents", type=Path, help="intents folder (default: [matcher] intents_dir)"
    )
    evaluate.add_argument(
        "--test", type=Path, required=True, help="CSV (text,intent) or JSON (test keys)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument(
        "--target-precision",
        type=float,
        metavar="P",
        help="also suggest thresholds reaching this auto-answer precision (0-1)",
    )
    evaluate.add_argument(
        "--oos-share",
        type=float,
        default=0.2,
        metavar="S",
        help="for --target-precision: the share of messages that are out of scope in your "
        "traffic; the intents' out_of_scope texts are weighted to it (default 0.2)",
    )
    evaluate.set_defaults(command=_eval)


def _add_inbox(commands: Commands) -> None:
    _group(commands, "inbox", "the built-in agent inbox").add_parser(
        "hash-password", help="make an argon2 hash for [[inbox.agents]] password_hash"
    ).set_defaults(command=_hash_password)


def _add_db(commands: Commands) -> None:
    _group(commands, "db", "database maintenance").add_parser(
        "upgrade", help="apply the database migrations"
    ).set_defaults(command=_db_upgrade)


def _add_model(commands: Commands) -> None:
    export = _group(commands, "model", "the sentence model").add_parser(
        "export",
        help="export [matcher] model to ONNX (checked against sentence-transformers first)",
    )
    export.add_argument(
        "--out", type=Path, help="folder to write (default: [matcher] onnx_dir or .carebot/onnx/)"
    )
    export.set_defaults(command=_model_export)


def _add_emotion(commands: Commands) -> None:
    train = _group(commands, "emotion", "the emotion signal").add_parser(
        "train",
        help="train the emotion head on GoEmotions (minutes: it encodes 54,000 texts)",
        description="Train the emotion head for a sentence model on GoEmotions and write its "
        "weights (.npz) with a provenance note (.md) beside them; prints the steps, what dev "
        "chose, and the F1 on dev and test. The texts are encoded with [matcher] backend "
        "(the model's ONNX export when there is one) and cached, so a rerun skips the model.",
    )
    train.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        type=Path,
        help="GoEmotions: a folder holding goemotions/ (or that folder itself) with "
        "original/labels.txt, original/train.tsv, dev.tsv, test.tsv, sentiment_dict.json "
        "and ekman_mapping.json, as google-research publishes them",
    )
    train.add_argument(
        "--out", type=Path, help="the .npz to write (default: the packaged emotion_head.npz)"
    )
    train.add_argument("--model", help="the sentence model (default: [matcher] model)")
    train.add_argument(
        "--cache",
        type=Path,
        help="folder for the splits' embeddings (default: .carebot/bench-cache)",
    )
    train.add_argument(
        "--compare", action="store_true", help="also print the dev F1 of the alternatives"
    )
    train.set_defaults(command=_emotion_train)


def _emotion_train(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.nlu.dataset_embeddings import DatasetEmbeddings, progress_bars
    from carebot.nlu.emotion_head import PACKAGED_HEAD
    from carebot.nlu.emotion_head_file import check_writable
    from carebot.nlu.emotion_training import train_emotion_head
    from carebot.nlu.goemotions import load_goemotions
    from carebot.runtime import load_encoder

    settings = load_settings(args.config)
    model = args.model or settings.matcher.model
    out = args.out or PACKAGED_HEAD
    check_writable(out)
    data = load_goemotions(args.data_dir)
    if model != settings.matcher.model:  # its export, if any, is in .carebot/onnx/<model>
        matcher = settings.matcher.model_copy(update={"model": model, "onnx_dir": ""})
        settings = settings.model_copy(update={"matcher": matcher})
    encoder = args.encoder or load_encoder(settings)
    cache = args.cache or settings.path(".carebot/bench-cache")
    embeddings = DatasetEmbeddings.of_encoder(cache, model, encoder, progress_bars())
    train_emotion_head(data, embeddings, out, model=model, compare=args.compare, say=print)
    weights = settings.emotion.head_weights
    if out.resolve() != (settings.path(weights) if weights else PACKAGED_HEAD).resolve():
        print(f'To use it, set in config.toml:\n  [emotion]\n  head_weights = "{out.resolve()}"')
    return 0


def _model_export(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.nlu.model_export import export_model
    from carebot.runtime import onnx_folder

    settings = load_settings(args.config)
    out = args.out or onnx_folder(settings)
    export_model(settings.matcher.model, out, base_dir=settings.base_dir, say=print)
    if args.out and args.out.resolve() != onnx_folder(settings).resolve():
        print(f'To serve with it, set [matcher] onnx_dir = "{out}" in config.toml.')
    return 0


def _chat(args: argparse.Namespace) -> int:
    from carebot.chat import run_chat
    from carebot.config import load_settings

    settings = load_settings(args.config)
    asyncio.run(run_chat(settings, explain=args.explain, user=args.user, encoder=args.encoder))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.server import serve

    settings = load_settings(args.config)
    asyncio.run(serve(settings, host=args.host, port=args.port, encoder=args.encoder))
    return 0


def _hash_password(_args: argparse.Namespace) -> int:
    import getpass

    from carebot.desk.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("carebot: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("carebot: use at least 8 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def _intents_check(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.nlu.intent_check import check_intents
    from carebot.nlu.intents import Severity

    settings = load_settings(args.config)
    directory = args.directory or settings.path(settings.matcher.intents_dir)
    encoder = None
    if not args.no_conflicts:
        from carebot.runtime import load_encoder

        encoder = lambda: load_encoder(settings)  # noqa: E731
    problems = check_intents(directory, placeholders=dict(settings.placeholders), encoder=encoder)
    for problem in problems:
        print(problem)
    errors = sum(p.severity is Severity.ERROR for p in problems)
    warnings = len(problems) - errors
    print(f"{directory}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def _intents_tune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from carebot.config import load_settings
    from carebot.nlu.intents import load_intents
    from carebot.nlu.tuning import TuneSettings, shown_on, tune

    if args.epochs < 1:
        raise CarebotError(f"--epochs must be at least 1 (got {args.epochs})")
    settings = load_settings(args.config)
    folder = args.intents or settings.path(settings.matcher.intents_dir)
    intents = load_intents(folder, settings.placeholders)
    with tqdm(desc="tuning", unit="step", file=sys.stderr) as bar:
        tuned = tune(
            intents,
            settings.matcher.model,
            args.out,
            settings=TuneSettings(epochs=args.epochs),
            base_dir=settings.base_dir,
            progress=shown_on(bar),
        )
    print(
        f"Tuned {settings.matcher.model} on {tuned.examples} examples of {tuned.intents} "
        f"intents ({tuned.steps} steps, {tuned.seconds:.0f} s, last loss {tuned.final_loss:.3f})."
    )
    print(f"Saved to {tuned.folder}. To use it, set in config.toml:")
    print(f'  [matcher]\n  model = "{tuned.folder.resolve()}"')
    print("then check the result with 'carebot eval' before and after.")
    return 0


def _intents_import(args: argparse.Namespace) -> int:
    from carebot.nlu.intent_import import import_intents

    result = import_intents(args.file, args.out, force=args.force)
    print(f"Imported {args.file}:")
    print(
        f"  {len(result.intents)} intents, {result.examples} examples, "
        f"{len(result.answers)} with an answer"
    )
    print(f"  {len(result.out_of_scope)} out-of-scope texts")
    print(
        f"  {result.duplicates} duplicate rows dropped ({result.conflicting} under another "
        f"intent than the first), {result.empty_texts} rows without text skipped"
    )
    if result.renamed:
        shown = ", ".join(f"{k!r} -> {v!r}" for k, v in list(result.renamed.items())[:5])
        more = " ..." if len(result.renamed) > 5 else ""
        print(f"  {len(result.renamed)} intent names made into ids: {shown}{more}")
    print(f"Wrote {len(result.files)} file(s) to {args.out}")
    if result.others:
        print(f"Note: {args.out} also holds {len(result.others)} other intent file(s).")
    print(f"Next: add answers, then 'carebot intents check {args.out}'.")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from carebot.config import load_settings
    from carebot.scorecard import evaluate, render, report

    if args.target_precision is not None and not 0 < args.target_precision <= 1:
        raise CarebotError(f"--target-precision must be in (0, 1] (got {args.target_precision})")
    if not 0 <= args.oos_share < 1:
        raise CarebotError(f"--oos-share must be in [0, 1) (got {args.oos_share})")
    settings = load_settings(args.config)
    encoder = args.encoder
    if encoder is None:
        from carebot.runtime import load_encoder

        encoder = load_encoder(settings)
    evaluation = evaluate(
        settings,
        intents_dir=args.intents or settings.path(settings.matcher.intents_dir),
        test_file=args.test,
        encoder=encoder,
        target_precision=args.target_precision,
        oos_share=args.oos_share,
        progress=False if args.json else None,
    )
    card = report(evaluation)
    print(json.dumps(card, allow_nan=False) if args.json else render(card))
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.store.database import Database

    async def upgrade() -> str | None:
        db = Database(load_settings(args.config).database_url())
        try:
            await db.upgrade()
            return await db.current_revision()
        finally:
            await db.close()

    print(f"database at revision {asyncio.run(upgrade())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
