"""Live intent reload: from saving an edited intent file to the new intents answering.

    python bench/reload.py DATA_DIR [--edits 5] [--cache DIR]

Writes CLINC150's training set (150 intents, 15,000 examples; DATA_DIR/clinc150/data_full.json)
as intent files, one per intent, into a temporary folder, starts carebot's reloader on it with
the default model and matcher, then edits one intent file ``--edits`` times (a new example each
time) and measures the seconds from the file being written to the new matcher being live: the
watcher's debounce, reading every file, encoding the new example, training the head from the
previous one, and the swap. Side by side: rebuilding the matcher from scratch with every example
already cached (a restart without the model load) and with nothing cached (a first start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from carebot.config import Settings  # noqa: E402
from carebot.nlu.embedding_cache import EmbeddingCache  # noqa: E402
from carebot.nlu.intents import load_intents  # noqa: E402
from carebot.nlu.matcher import Matcher  # noqa: E402
from carebot.reload import IntentReloader  # noqa: E402
from carebot.runtime import build_matching, embedding_cache, load_encoder  # noqa: E402


def write_intents(data_dir: Path, folder: Path) -> int:
    """CLINC150's in-scope training rows as one intent file per intent; returns the examples."""
    rows = json.loads((data_dir / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    by_intent: dict[str, list[str]] = {}
    for text, intent in rows["train"]:
        by_intent.setdefault(intent, []).append(text)
    for intent, texts in by_intent.items():
        lines = ["intents:", f"  - id: {intent}", "    examples:"]
        lines += [f"      - {json.dumps(text)}" for text in texts]
        lines.append(f"    answer: {json.dumps('The answer about ' + intent)}")
        (folder / f"{intent}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sum(len(texts) for texts in by_intent.values())


def add_example(file: Path, text: str) -> None:
    lines = file.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "examples:") + 1
    lines.insert(at, f"      - {json.dumps(text)}")
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def live_edits(reloader: IntentReloader, file: Path, edits: int) -> list[float]:
    watching = asyncio.create_task(reloader.run())
    await reloader.watching.wait()
    seconds = []
    try:
        for n in range(edits):
            done = reloader.reloads + 1
            started = time.perf_counter()
            add_example(file, f"a brand new way of asking, number {n} {time.time()}")
            async with reloader.changed:
                await reloader.changed.wait_for(lambda done=done: reloader.reloads >= done)
            seconds.append(time.perf_counter() - started)
    finally:
        watching.cancel()
    return seconds


def rebuild(settings: Settings, matcher: Matcher, cache: EmbeddingCache) -> float:
    started = time.perf_counter()
    intents = load_intents(settings.path(settings.matcher.intents_dir))
    Matcher.configured(settings.matcher, encoder=matcher.encoder, intents=intents, cache=cache)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=ROOT / ".carebot" / "bench-cache" / "reload")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        examples = write_intents(args.data_dir, Path(folder))
        settings = Settings.model_validate(
            {"matcher": {"intents_dir": folder, "cache_dir": str(args.cache)}}
        )
        encoder = load_encoder(settings)
        started = time.perf_counter()
        triage, queue, reloader = build_matching(settings, encoder)
        first_start = time.perf_counter() - started
        assert reloader is not None
        edits = await live_edits(reloader, Path(folder) / "balance.yaml", args.edits)
        cache = embedding_cache(settings, encoder)
        restart = [rebuild(settings, triage.matcher, cache) for _ in range(3)]
        queue.close()
    print(
        f"{len(triage.matcher.intents)} intents, {examples} examples (CLINC150 train); "
        f"method {settings.matcher.method}; {args.edits} edits of one file"
    )
    print(f"{'':<52}{'median s':>10}{'max s':>8}")
    print(
        f"{'live reload: file saved -> new intents live':<52}"
        f"{statistics.median(edits):>10.2f}{max(edits):>8.2f}"
    )
    print(
        f"{'rebuild from scratch, every example cached':<52}"
        f"{statistics.median(restart):>10.2f}{max(restart):>8.2f}"
    )
    print(f"{'first build (examples not cached yet, or cached)':<52}{first_start:>10.2f}")
    print("goal (issue 5): live within 2 s for a 15,000-example set")


if __name__ == "__main__":
    asyncio.run(main())
