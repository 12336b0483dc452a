"""The change preview (issue 15, section 2): how long replaying 2,000 stored customer messages
against an edited intent set takes, beside the same replay with every message encoded again.

    HF_HUB_OFFLINE=1 python bench/preview.py [DATA_DIR] [--config FILE] [--messages 2000]
                                             [--runs 5] [--cache DIR] [--seed N]

DATA_DIR (default ../shared/data) holds ``clinc150/data_full.json``.

* **The bot**: the shipped config (``--config``, default the repo's config.toml), its model as
  the service loads it (:func:`carebot.runtime.load_encoder`: the ONNX export, made first when
  missing) and the shipped intents (``intents/``) as the live set.
* **The store**: a temporary SQLite file, filled through the real pipeline
  (``runtime.inbox.receive``) with ``--messages`` customer messages, one conversation each:
  CLINC150 ``test`` and ``oos_test`` texts drawn with ``--seed`` (banking, travel, small talk...
  mostly out of the shop's scope, as a new intent's traffic is). The pipeline stores each
  message's embedding beside its decision.
* **The edit**: a new intent ``lost_luggage`` with 10 of CLINC150's ``train`` rows as
  examples, and ``order_status`` with half its examples replaced by 8 of CLINC150's
  ``order_status`` rows.
* **Timed** (median over ``--runs``, each from an examples cache holding the live examples
  only, so each run encodes the edit's new examples as a first preview does):
  :meth:`ChangePreview.run` from the stored vectors, and the baseline: the same replay with a
  live encoder under another fingerprint, so that every message is encoded again (what a
  preview without stored vectors costs).

Goal (issue 15): a preview over 2,000 messages in < 3 s on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from measure import Sink  # noqa: E402  (bench/measure.py)

from carebot.config import Settings, load_settings  # noqa: E402
from carebot.console.preview import ChangePreview, Group, Preview  # noqa: E402
from carebot.models import InboundMessage  # noqa: E402
from carebot.nlu.embedding_cache import EmbeddingCache  # noqa: E402
from carebot.nlu.encoder import Encoder  # noqa: E402
from carebot.nlu.intents import Intent, IntentSet, load_intents  # noqa: E402
from carebot.nlu.matcher import Matcher  # noqa: E402
from carebot.runtime import build_runtime, emotion_scorer, load_encoder  # noqa: E402
from carebot.store.database import Database  # noqa: E402

SEED = 15
CONCURRENT = 64  # messages in flight while filling the store (the match queue's batch)


class Renamed:
    """The encoder under another fingerprint: no stored vector is its own (the baseline)."""

    def __init__(self, encoder: Encoder) -> None:
        self._encoder = encoder
        self.model_id = f"{encoder.model_id}+renamed"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._encoder.encode(texts)


def draw_messages(data: dict[str, list[list[str]]], count: int, seed: int) -> list[str]:
    texts = [text for text, _ in data["test"] + data["oos_test"]]
    if count > len(texts):
        raise SystemExit(f"--messages: CLINC150's test rows hold {len(texts)} texts, not {count}")
    return random.Random(seed).sample(texts, count)


def edited_intents(live: IntentSet, data: dict[str, list[list[str]]]) -> IntentSet:
    """The edit: a new intent with 10 examples, and half of another's examples replaced."""
    train: dict[str, list[str]] = {}
    for text, intent in data["train"]:
        train.setdefault(intent, []).append(text)
    luggage = Intent(
        "lost_luggage",
        tuple(train["lost_luggage"][:10]),
        answer="Sorry about your bag: report it at the airline's desk, then to us with the tag.",
        title="Lost luggage",
    )
    status = live["order_status"]
    kept = status.examples[: len(status.examples) // 2]
    examples = (*kept, *train["order_status"][:8])
    changed = dataclasses.replace(status, examples=examples, example_lines=())
    intents = tuple(changed if i.id == "order_status" else i for i in live.intents)
    return IntentSet((*intents, luggage), live.out_of_scope)


async def fill(settings: Settings, encoder: Encoder, url: str, texts: list[str]) -> float:
    """The messages through the real pipeline, ``CONCURRENT`` at a time; the seconds taken."""
    runtime = await build_runtime(
        settings, encoder=encoder, channels={"bench": Sink()}, database_url=url
    )
    started = time.perf_counter()
    try:
        for start in range(0, len(texts), CONCURRENT):
            await asyncio.gather(
                *(
                    runtime.inbox.receive(
                        InboundMessage("bench", f"u{n}", f"m{n}", text, runtime.clock())
                    )
                    for n, text in enumerate(texts[start : start + CONCURRENT], start=start)
                )
            )
        return time.perf_counter() - started
    finally:
        runtime.matches.close()
        await runtime.db.close()


async def timed_runs(
    runs: int,
    *,
    db: Database,
    settings: Settings,
    live: Matcher,
    edited: IntentSet,
    live_cache: Path,
    model_id: str,
    scratch: Path,
    limit: int,
) -> list[Preview]:
    """``runs`` previews, each with a fresh copy of the live examples' cache (``model_id``: the
    model whose vectors it holds; the baseline's renamed encoder encodes the same)."""
    emotion = emotion_scorer(settings, live.encoder)
    previews = []
    for n in range(runs):
        folder = scratch / f"run-{n}"
        shutil.copytree(live_cache, folder)
        cache = EmbeddingCache(folder, model_id)
        preview = ChangePreview(db=db, settings=settings, emotion=emotion, cache=cache)
        previews.append(await preview.run(live, edited, limit=limit))
    return previews


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, nargs="?", default=ROOT.parent / "shared" / "data")
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=SEED, help="draws the messages")
    parser.add_argument("--cache", type=Path, default=ROOT / ".carebot" / "bench-cache" / "preview")
    args = parser.parse_args()
    data = json.loads((args.data_dir / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    texts = draw_messages(data, args.messages, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = load_settings(args.config)
        matcher_cfg = base.matcher.model_copy(
            update={
                "intents_dir": str(base.path(base.matcher.intents_dir)),
                "cache_dir": str(folder / "live-cache"),
                "reload": False,
            }
        )
        settings = base.model_copy(update={"matcher": matcher_cfg})
        encoder = load_encoder(settings, export_if_missing=True)
        url = f"sqlite+aiosqlite:///{folder / 'preview.db'}"
        filled = await fill(settings, encoder, url, texts)

        live_intents = load_intents(
            settings.path(settings.matcher.intents_dir), settings.placeholders
        )
        live_cache = folder / "live-cache"
        cache = EmbeddingCache(live_cache, encoder.model_id)
        live = Matcher.configured(
            settings.matcher, encoder=encoder, intents=live_intents, cache=cache
        )
        renamed = Renamed(encoder)
        baseline_live = Matcher.configured(
            settings.matcher, encoder=renamed, intents=live_intents, cache=cache
        )
        edited = edited_intents(live_intents, data)
        db = Database(url)
        try:
            previews: list[Preview] = []
            baselines: list[Preview] = []
            for name, matcher, runs in (
                ("runs", live, previews),
                ("baseline", baseline_live, baselines),
            ):
                runs += await timed_runs(
                    args.runs,
                    db=db,
                    settings=settings,
                    live=matcher,
                    edited=edited,
                    live_cache=live_cache,
                    model_id=encoder.model_id,
                    scratch=folder / name,
                    limit=args.messages,
                )
        finally:
            await db.close()

    preview, baseline = previews[0], baselines[0]
    fast = statistics.median(p.seconds for p in previews)
    slow = statistics.median(p.seconds for p in baselines)
    print(
        f"{preview.messages} customer messages (CLINC150 test + oos_test, seed {args.seed}) stored "
        f"through the pipeline in {filled:.0f} s; {len(live_intents)} shipped intents -> "
        f"{len(edited)} (lost_luggage added with 10 examples, order_status's examples half "
        f"replaced); model {settings.matcher.model}, backend {settings.matcher.backend}; "
        f"median of {args.runs} runs"
    )
    print(f"{'':<56}{'median s':>10}{'min s':>8}{'encoded':>9}")
    for name, runs in [
        ("change preview (stored vectors)", previews),
        ("baseline: every message encoded again, then decided", baselines),
    ]:
        seconds = [p.seconds for p in runs]
        print(
            f"{name:<56}{statistics.median(seconds):>10.2f}{min(seconds):>8.2f}"
            f"{runs[0].reencoded:>9}"
        )
    print(f"{'baseline / preview':<56}{slow / fast:>9.1f}x")
    print("goal (issue 15): a preview over 2,000 messages in < 3 s")
    print()
    print(f"Changes ({len(preview.changes)} of {preview.messages} messages):")
    for group, count in preview.counts().items():
        print(f"  {group.label:<34}{count:>6}")
    ours = {(c.message_id, c.group, c.new.intent) for c in preview.changes}
    theirs = {(c.message_id, c.group, c.new.intent) for c in baseline.changes}
    print(
        f"Baseline's changes: {len(baseline.changes)}; listed differently from the preview's "
        f"(float16 stored vectors vs float32 fresh ones): {len(ours ^ theirs)}"
    )
    shown = [c for c in preview.by_group()[Group.NEWLY_ANSWERED]][:3]
    for change in shown:
        print(f"  e.g. {change.text!r}: {change.old} -> {change.new}")


if __name__ == "__main__":
    asyncio.run(main())
