"""The ops staff's commands: ``intents check``, ``intents import``, ``intents tune``,
``intents preview`` and ``eval``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from carebot.cli.commands import Commands, group
from carebot.exceptions import CarebotError

if TYPE_CHECKING:
    from carebot.config import Settings
    from carebot.nlu.encoder import Encoder


def add_intents(commands: Commands) -> None:
    intents = group(commands, "intents", "work with the FAQ intents")
    check = intents.add_parser("check", help="validate intent files (exit 1 on errors)")
    check.add_argument(
        "directory", nargs="?", type=Path, help="intents folder (default: [matcher] intents_dir)"
    )
    check.add_argument(
        "--no-conflicts",
        action="store_true",
        help="skip the conflict analysis, which compares the examples with the model "
        "(the model is not loaded)",
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
    preview = intents.add_parser(
        "preview",
        help="show which stored customer messages an edited intents folder would decide "
        "differently",
        description="Replay the last customer messages in the configured [store] against the "
        "live intents ([matcher] intents_dir) and against DIRECTORY, through the real triage, "
        "and list every message whose decision would change, grouped, with the counts on top.",
    )
    preview.add_argument("directory", type=Path, help="the edited intents folder")
    preview.add_argument(
        "--limit", type=int, default=2000, help="how many of the last messages (2000)"
    )
    preview.set_defaults(command=_intents_preview)


def add_eval(commands: Commands) -> None:
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


def _intents_check(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.nlu.intent_check import check_intents, untranslated_messages
    from carebot.nlu.intents import Severity
    from carebot.public.posting import public_guard

    settings = load_settings(args.config)
    directory = args.directory or settings.path(settings.matcher.intents_dir)
    encoder = None
    if not args.no_conflicts:  # the conflict analysis compares the examples' embeddings
        encoder = lambda: args.encoder or _load_encoder(settings)  # noqa: E731
    problems = check_intents(
        directory,
        placeholders=dict(settings.placeholders),
        encoder=encoder,
        public_guard=public_guard(settings.public),
        languages=settings.languages,
    )
    problems.extend(untranslated_messages(settings))
    for problem in problems:
        print(problem)
    errors = sum(p.severity is Severity.ERROR for p in problems)
    warnings = len(problems) - errors
    print(f"{directory}: {errors} error(s), {warnings} warning(s)")
    if errors and encoder is not None:
        print("The conflict analysis (which loads the model) runs once the errors are fixed.")
    return 1 if errors else 0


def _intents_preview(args: argparse.Namespace) -> int:
    import asyncio

    from carebot.cli.commands import check_intents_first
    from carebot.cli.report import open_store
    from carebot.config import load_settings
    from carebot.console.preview import ChangePreview, preview_table
    from carebot.nlu.intents import ParsedFiles, Severity, load_intents, read_intents
    from carebot.nlu.matcher import Matcher
    from carebot.runtime import embedding_cache, emotion_scorer

    if args.limit < 1:
        raise CarebotError(f"--limit must be at least 1 (got {args.limit})")
    settings = load_settings(args.config)
    edited, problems = read_intents(
        args.directory,
        settings.placeholders,
        language=settings.languages.default,
        served=settings.languages.detect,
    )
    errors = [p for p in problems if p.severity is Severity.ERROR]
    if errors:
        for problem in errors:
            print(problem)
        print(
            f"{args.directory}: {len(errors)} error(s); fix them ('carebot intents check "
            f"{args.directory}' lists the warnings too) and preview again."
        )
        return 1
    check_intents_first(settings)  # the live folder: its errors before the model loads
    encoder = args.encoder or _load_encoder(settings)
    cache = embedding_cache(settings, encoder)
    parsed = ParsedFiles(settings.path(settings.matcher.cache_dir) / "parsed")
    live_intents = load_intents(
        settings.path(settings.matcher.intents_dir),
        settings.placeholders,
        parsed,
        language=settings.languages.default,
        served=settings.languages.detect,
    )
    live = Matcher.configured(settings.matcher, encoder=encoder, intents=live_intents, cache=cache)
    emotion = emotion_scorer(settings, encoder)

    async def run() -> str:
        db = await open_store(settings)
        try:
            preview = ChangePreview(db=db, settings=settings, emotion=emotion, cache=cache)
            return preview_table(await preview.run(live, edited, limit=args.limit))
        finally:
            await db.close()

    sys.stdout.write(asyncio.run(run()))
    return 0


def _load_encoder(settings: Settings) -> Encoder:
    """The configured encoder; its ONNX export is made first when missing (one line says so)."""
    from carebot.runtime import load_encoder

    return load_encoder(settings, export_if_missing=True)


def _intents_tune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from carebot.config import load_settings
    from carebot.nlu.intents import load_intents
    from carebot.nlu.tuning import TuneSettings, shown_on, tune

    if args.epochs < 1:
        raise CarebotError(f"--epochs must be at least 1 (got {args.epochs})")
    settings = load_settings(args.config)
    folder = args.intents or settings.path(settings.matcher.intents_dir)
    intents = load_intents(
        folder,
        settings.placeholders,
        language=settings.languages.default,
        served=settings.languages.detect,
    )
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
    encoder = args.encoder or _load_encoder(settings)
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
