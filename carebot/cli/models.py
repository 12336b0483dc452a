"""The models' commands: ``model export`` (ONNX), ``model distil`` (the distilled
multilingual encoder), ``emotion train`` (the emotion head) and
``emotion labels`` (the agents' labels, for retraining)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from carebot.cli.commands import Commands, group


def add_model(commands: Commands) -> None:
    model = group(commands, "model", "the sentence model")
    export = model.add_parser(
        "export",
        help="export [matcher] model to ONNX (checked against sentence-transformers first)",
    )
    export.add_argument(
        "--out", type=Path, help="folder to write (default: [matcher] onnx_dir or .carebot/onnx/)"
    )
    export.set_defaults(command=_model_export)
    distil = model.add_parser(
        "distil",
        help="teach the multilingual encoder [matcher] model's vectors (about 30 minutes)",
        description="Train USE multilingual v3's dense layers, with a layer to the teacher's "
        "size, so that it gives the teacher's vector ([matcher] model, all-MiniLM-L6-v2 as "
        "shipped) for English customer messages (CLINC150 and BANKING77 train, the care set's "
        "train split) and for the care set's translations (data/care/<code>/train.jsonl) of "
        'them; writes the weights that [matcher] model = "use-multilingual-distilled" '
        "runs. Neither the intents nor any test split is read.",
    )
    distil.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        type=Path,
        help="holds banking77/train.csv and clinc150/data_full.json",
    )
    distil.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the .npz to write (the packaged one: carebot/nlu/data/use_distilled.npz)",
    )
    distil.add_argument("--epochs", type=int, default=3, help="passes over the data (default 3)")
    distil.add_argument(
        "--cache",
        type=Path,
        help="folder for the teacher's vectors (default: .carebot/bench-cache)",
    )
    distil.set_defaults(command=_model_distil)


def add_emotion(commands: Commands) -> None:
    emotion = group(commands, "emotion", "the emotion signal")
    train = emotion.add_parser(
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
        "--out",
        type=Path,
        help="the .npz to write (default: .carebot/emotion_head_goemotions.npz; the packaged "
        "head is the care head, see train-care)",
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
    care = emotion.add_parser(
        "train-care",
        help="train the emotion head on the care upset set (what ships; a few minutes)",
        description="Train the care emotion head (outputs upset and frustrated) on the care "
        "upset set's train split and calm questions from BANKING77 and CLINC150 train, choose "
        "its settings by cross-validation, and write its weights (.npz) with a provenance "
        "note (.md). With --languages, the care set's translations and calm questions in "
        "those languages learn too (the packaged multilingual head: --model use-multilingual "
        "--languages de,fr,es). No test split is read (bench/upset.py reports on the care "
        "set's).",
    )
    care.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        type=Path,
        help="holds banking77/train.csv and clinc150/data_full.json",
    )
    care.add_argument(
        "--care",
        type=Path,
        help="the care upset set's folder, in English (default: the repository's data/care)",
    )
    care.add_argument(
        "--languages",
        type=_language_codes,
        default=(),
        metavar="CODES",
        help="comma-separated codes of other languages to learn from too, e.g. de,fr,es: for "
        "each, the care set's translation in CARE/<code>/train.jsonl (the same ids and labels "
        "as the English lines; a line and its translations stay in one cross-validation fold) "
        "and, as calm questions, the train split of "
        "CARE/../languages/intent_examples.<code>.jsonl but the complaint and talk_to_human "
        "examples (default: English only)",
    )
    care.add_argument(
        "--out",
        type=Path,
        help="the .npz to write (default: the packaged head for the model: emotion_head.npz, "
        "or emotion_head_use.npz for use-multilingual)",
    )
    care.add_argument("--model", help="the sentence model (default: [matcher] model)")
    care.add_argument(
        "--cache",
        type=Path,
        help="folder for the texts' embeddings (default: .carebot/bench-cache)",
    )
    care.set_defaults(command=_emotion_train_care)
    _add_labels(emotion)


def _language_codes(value: str) -> tuple[str, ...]:
    """``de,fr,es`` -> ``("de", "fr", "es")``: lower-case language codes, each once."""
    codes = tuple(dict.fromkeys(code.strip().lower() for code in value.split(",")))
    bad = [code for code in codes if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)?", code)]
    if bad or not codes:
        raise argparse.ArgumentTypeError(
            f"expected language codes separated by commas, such as de,fr,es; not {value!r}"
        )
    if "en" in codes:
        raise argparse.ArgumentTypeError(
            "en is the --care folder itself: name only the other languages, such as de,fr,es"
        )
    return codes


def _add_labels(emotion: Commands) -> None:
    labels = emotion.add_parser(
        "labels",
        help="export the agents' upset / not upset labels as JSONL, for retraining",
        description="Write every label agents gave a customer message (in the inbox or in "
        "Slack) as one JSON object a line, in the care data set's shape (data/care/README.md): "
        "id, text, label (upset, or calm for not upset), style (chat), kind (agent_label), "
        "and what it was given on: emotion (the bot's value then, null if it never scored the "
        "message), agent, labelled_at, channel, message_id. Reads the configured database.",
    )
    labels.add_argument(
        "--out", type=Path, required=True, help="the .jsonl file to write ('-': standard output)"
    )
    labels.set_defaults(command=_emotion_labels)


def _emotion_labels(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import sys

    from carebot.clock import utcnow
    from carebot.config import load_settings
    from carebot.exceptions import DataError
    from carebot.store.database import Database
    from carebot.store.emotion_labels import EmotionLabelStore

    async def read() -> list[dict[str, object]]:
        db = Database(load_settings(args.config).database_url())
        try:
            await db.check_migrated()
            return await EmotionLabelStore(db, clock=utcnow).export()
        finally:
            await db.close()

    rows = asyncio.run(read())
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if str(args.out) == "-":
        sys.stdout.write(lines)
        return 0
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(lines, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"Cannot write the labels to {args.out}: {exc}") from exc
    upset = sum(row["label"] == "upset" for row in rows)
    print(f"Wrote {len(rows)} labels to {args.out} ({upset} upset, {len(rows) - upset} calm)")
    return 0


def _emotion_train(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.nlu.dataset_embeddings import DatasetEmbeddings, progress_bars
    from carebot.nlu.emotion_head import packaged_head
    from carebot.nlu.emotion_head_file import check_writable
    from carebot.nlu.emotion_training import train_emotion_head
    from carebot.nlu.goemotions import load_goemotions
    from carebot.runtime import load_encoder

    settings = load_settings(args.config)
    model = args.model or settings.matcher.model
    out = args.out or settings.path(".carebot/emotion_head_goemotions.npz")
    check_writable(out)
    data = load_goemotions(args.data_dir)
    if model != settings.matcher.model:  # its export, if any, is in .carebot/onnx/<model>
        matcher = settings.matcher.model_copy(update={"model": model, "onnx_dir": ""})
        settings = settings.model_copy(update={"matcher": matcher})
    encoder = args.encoder or load_encoder(settings, export_if_missing=True)
    cache = args.cache or settings.path(".carebot/bench-cache")
    embeddings = DatasetEmbeddings.of_encoder(cache, model, encoder, progress_bars())
    train_emotion_head(data, embeddings, out, model=model, compare=args.compare, say=print)
    weights = settings.emotion.head_weights
    if out.resolve() != (settings.path(weights) if weights else packaged_head(model)).resolve():
        print(
            "To use it, set in config.toml:\n  [emotion]\n"
            f'  head_weights = "{out.resolve()}"\n  target = "negative"  # or "anger"'
        )
    return 0


def _emotion_train_care(args: argparse.Namespace) -> int:
    from carebot.config import load_settings
    from carebot.nlu.care_set import REPOSITORY_SET
    from carebot.nlu.care_training import train_care_head
    from carebot.nlu.dataset_embeddings import DatasetEmbeddings, progress_bars
    from carebot.nlu.emotion_head import packaged_head
    from carebot.nlu.emotion_head_file import check_writable
    from carebot.runtime import load_encoder

    settings = load_settings(args.config)
    model = args.model or settings.matcher.model
    out = args.out or packaged_head(model)
    check_writable(out)
    if model != settings.matcher.model:
        matcher = settings.matcher.model_copy(update={"model": model, "onnx_dir": ""})
        settings = settings.model_copy(update={"matcher": matcher})
    encoder = args.encoder or load_encoder(settings)
    cache = args.cache or settings.path(".carebot/bench-cache")
    embeddings = DatasetEmbeddings.of_encoder(cache, model, encoder, progress_bars())
    care = args.care or REPOSITORY_SET
    train_care_head(
        care, args.data_dir, embeddings, out, model=model, languages=args.languages, say=print
    )
    return 0


def _model_distil(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from carebot.config import load_settings
    from carebot.nlu.distillation import DistilSettings, distil
    from carebot.nlu.tuning import shown_on
    from carebot.nlu.use_encoder import is_use
    from carebot.runtime import load_encoder

    settings = load_settings(args.config)
    if is_use(settings.matcher.model):
        print(
            f"error: the teacher is [matcher] model, here {settings.matcher.model!r}: the "
            "multilingual encoder cannot teach itself. Run with a config whose model is a "
            "sentence-transformers model (all-MiniLM-L6-v2 as shipped)."
        )
        return 2
    if args.epochs < 1:
        print("error: --epochs must be 1 or more")
        return 2
    teacher = load_encoder(settings, export_if_missing=True)
    cache = args.cache or settings.path(".carebot/bench-cache")
    with tqdm(desc="distilling", unit="step") as bar:
        done = distil(
            teacher,
            args.data_dir,
            args.out,
            cache=cache,
            settings=DistilSettings(epochs=args.epochs),
            progress=shown_on(bar),
        )
    print(
        f"Distilled {teacher.model_id} into {done.path}: {done.english} English texts, "
        f"{done.pairs} translated pairs, {done.steps} steps in {done.seconds:.0f} s "
        f"(final loss {done.final_loss:.4f})."
    )
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
