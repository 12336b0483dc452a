"""Encoder backends side by side: torch (sentence-transformers) and the ONNX export, one run.

    python bench/backends.py DATA_DIR [--model all-MiniLM-L6-v2] [--work DIR] [--runs 5]
                             [--skip-eval]

DATA_DIR holds ``clinc150/data_full.json`` (see its README); nothing is copied from it. WORK
(default ``.carebot/bench-backends``) holds what the bench makes: the ONNX export (``onnx/``),
one config per backend (``config-torch.toml``, ``config-onnx.toml``: the settings and
placeholders of the shipped ``config.toml`` with the shipped ``intents/``, a SQLite file, the
embedding cache and the export in WORK), the chat processes' stderr (``chat-*.log``) and the
imported CLINC150 intents. A rerun reuses them (the export, the caches, the import).

One table: rows = metrics, columns = torch | onnx | ratio (onnx / torch) | goal.

* export s / max |difference|: ``carebot model export --out WORK/onnx`` (a separate process,
  ``carebot.nlu.model_export.export_model``), timed, when no current export is there ("existing"
  otherwise); the manifest's largest difference from sentence-transformers on the export's
  verification sentences.
* cold start s (median; min-max): a fresh ``carebot -c CONFIG chat`` process, "where is my
  order" piped on stdin, from spawn to its first ``bot>`` line on stdout. One untimed warm-up run
  per backend first (it fills the caches and creates the database), then --runs timed runs that
  alternate between the backends, so both see the same machine noise.
* peak RSS MB (median): ``ru_maxrss`` of those same processes (``os.wait4``, KB on Linux). A
  spawned child's ``ru_maxrss`` is at least its parent's peak at the spawn (Linux keeps the
  larger), so nothing heavy is loaded here before these runs (the export is a separate process);
  the header prints that floor. RSS high-water at answer: the child's ``VmHWM``
  (/proc/PID/status) read when its first answer arrives, its own memory only.
* encode 1 message p50 / p99 ms: in-process, both encoders loaded once with threads = the
  available cores; 300 CLINC150 test sentences (``test`` + ``oos_test``, shuffled with a fixed
  seed), one ``encode([text])`` call each, in blocks of 50 that alternate between the backends
  (each after 0.5 s of rest and 5 untimed calls). Per message alternation would measure the
  interference of the two runtimes' spinning worker threads instead (about 2x slower each).
* encode batch ms/message: 2048 sentences in one ``encode()`` call (after 0.5 s of rest); median
  of 3 rounds alternating the backends.
* embedding max / mean |difference|, min cosine: the two backends' vectors of the first 2000 of
  those sentences, compared pair by pair.
* identical decisions: ``Triage.decide`` (``runtime.build_triage`` over the shipped intents, with
  the settings of ``config.toml`` and WORK's cache) on every example of every shipped intent plus
  500 CLINC150 test sentences, the same clock for both; a decision is identical when its kind,
  intent and reasons are. The first differences are listed on stderr.
* eval accuracy / coverage@0.97 / latency p50 ms / test rows s (unless --skip-eval): the
  scorecard's accuracy, coverage_at 0.97, latency_ms p50 and timings_s rows_s. ``carebot intents
  import`` of CLINC150's train rows into WORK/clinc-intents (once), then ``carebot eval --json``
  on its ``test`` + ``oos_test`` rows (``data_full.json`` itself is the test file) per backend,
  with the encoders above; metrics of DESIGN.md section 7. This takes minutes; progress goes to
  stderr.

Goals (the issue): with ONNX, cold start to the first answer < 1.5 s and peak RSS < 300 MB;
single-message encode p50 at least 2x faster than torch; identical decisions; eval accuracy
equal to 3 decimals. The machine is shared: keep other CPU work low while this runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from measure import percentile  # noqa: E402  (bench/measure.py)

from carebot import cli  # noqa: E402
from carebot.clock import utcnow  # noqa: E402
from carebot.config import Settings, load_settings  # noqa: E402
from carebot.nlu.encoder import (  # noqa: E402
    PACKAGED_MODELS,
    Encoder,
    SentenceTransformerEncoder,
    resolve_model,
)
from carebot.nlu.intents import load_intents  # noqa: E402
from carebot.nlu.onnx_encoder import (  # noqa: E402
    Manifest,
    OnnxEncoder,
    available_cores,
    export_problem,
)
from carebot.runtime import build_triage  # noqa: E402
from carebot.triage import TriageContext  # noqa: E402

BACKENDS = ("torch", "onnx")
QUESTION = "where is my order"
CAREBOT = Path(sys.executable).with_name("carebot")  # the console script of this virtualenv
SEED = 7
WARM_UP = 5  # untimed encode calls before each block of single messages
SINGLE = 300  # sentences encoded one at a time
BLOCK = 50  # single messages timed in a row per backend
SETTLE = 0.5  # seconds of rest before each block
BATCH = 2048  # sentences in one encode() call
BATCH_ROUNDS = 3
DIFF = 2000  # sentences whose vectors are compared
DECIDE = 500  # CLINC150 sentences decided besides the shipped intents' examples
CHAT_TIMEOUT = 180.0  # seconds before a chat process that never answers is killed
Row = tuple[str, str, str, str, str]  # metric, torch, onnx, ratio, goal


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def model_name(model: str) -> str:
    """The model as the configs name it: a local folder made absolute (the configs live in WORK)."""
    if model.casefold() in PACKAGED_MODELS:
        return model
    resolved = resolve_model(model, ROOT)
    return str(resolved.resolve()) if isinstance(resolved, Path) else model


def clinc_texts(data_dir: Path) -> list[str]:
    """CLINC150's test and oos_test sentences, in a fixed shuffled order."""
    data = json.loads((data_dir / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    texts = [text for key in ("test", "oos_test") for text, _ in data[key]]
    random.Random(SEED).shuffle(texts)
    return texts


def ensure_export(model: str, config: Path, folder: Path) -> tuple[float | None, Manifest]:
    """``carebot model export`` into ``folder`` unless a current export is there; its seconds
    (None: kept). A separate process, so torch never inflates this one's memory (see
    ``chat_once``)."""
    problem = export_problem(folder, model, ROOT)
    if problem is None:
        return None, Manifest.read(folder)
    say(problem)
    start = time.perf_counter()
    command = [str(CAREBOT), "-c", str(config), "model", "export", "--out", str(folder)]
    code = subprocess.run(command, stdout=sys.stderr, check=False).returncode
    if code:
        raise RuntimeError(f"{' '.join(command)} failed (exit {code})")
    return time.perf_counter() - start, Manifest.read(folder)


def simple(value: Any) -> bool:
    """A value written with json.dumps is valid TOML: strings, numbers, booleans, their lists."""
    if isinstance(value, list):
        return all(simple(v) for v in value)
    return isinstance(value, str | int | float | bool)


def write_config(work: Path, backend: str, model: str) -> Path:
    """WORK/config-BACKEND.toml: the shipped config.toml (placeholders included) with the shipped
    intents, and the store, the caches and the export in WORK."""
    shipped = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    overrides = {
        "store": {"url": f"sqlite+aiosqlite:///{work / f'chat-{backend}.db'}"},
        "matcher": {
            "model": model,
            "backend": backend,
            "onnx_dir": str(work / "onnx"),
            "cache_dir": str(work / "cache"),
            "intents_dir": str(ROOT / "intents"),
        },
    }
    lines = []
    for section in {**shipped, **overrides}:
        values = {**shipped.get(section, {}), **overrides.get(section, {})}
        lines.append(f"[{section}]")
        lines += [
            f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in values.items() if simple(v)
        ]
        lines.append("")
    path = work / f"config-{backend}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def chat_once(config: Path, log: Path) -> tuple[float, float, float]:
    """Seconds from spawn to the first ``bot>`` line of a fresh chat process; its peak RSS MB
    (``ru_maxrss``) and its RSS high-water mark at that answer (``VmHWM``).

    ``ru_maxrss`` of a spawned child is at least its parent's own peak at the spawn (Linux keeps
    the larger), so this process must stay small until the chat runs are done."""
    env = {k: v for k, v in os.environ.items() if k != "CAREBOT_DATABASE_URL"}
    command = [str(CAREBOT), "-c", str(config), "chat"]
    with log.open("w") as errors:
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=config.parent,
            env=env,
        )
        watchdog = threading.Timer(CHAT_TIMEOUT, process.kill)
        watchdog.start()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(QUESTION + "\n")
        process.stdin.flush()
        seconds, at_answer = None, 0.0
        for line in process.stdout:
            if line.startswith("bot>"):
                seconds = time.perf_counter() - start
                at_answer = high_water_mb(process.pid)
                break
        process.stdin.close()  # end of input: the chat stops
        process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        watchdog.cancel()
    check_chat(command, process.returncode, seconds, log)
    assert seconds is not None
    return seconds, usage.ru_maxrss / 1024, at_answer  # KB on Linux


def high_water_mb(pid: int) -> float:
    """The process's RSS high-water mark so far (VmHWM), in MB; 0 when unreadable."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def check_chat(command: list[str], code: int | None, seconds: float | None, log: Path) -> None:
    """Raise with the chat's stderr when it failed, never answered or fell back to torch."""
    stderr = log.read_text(encoding="utf-8", errors="replace")
    if seconds is None or code != 0 or "slower torch backend" in stderr:
        raise RuntimeError(
            f"{' '.join(command)} failed (exit {code}, answered: {seconds is not None}); its "
            f"stderr ({log}):\n{stderr[-2000:]}"
        )


def cold_starts(configs: dict[str, Path], runs: int) -> dict[str, list[tuple[float, ...]]]:
    """(seconds to first answer, ru_maxrss MB, VmHWM MB) of ``runs`` chat processes per backend."""
    logs = {b: c.with_name(f"chat-{b}.log") for b, c in configs.items()}
    for backend, config in configs.items():
        say(f"cold start, {backend}: untimed warm-up run")
        chat_once(config, logs[backend])
    results: dict[str, list[tuple[float, ...]]] = {b: [] for b in configs}
    for run in range(runs):
        order = list(configs) if run % 2 == 0 else list(reversed(configs))
        for backend in order:
            results[backend].append(chat_once(configs[backend], logs[backend]))
        shown = ", ".join(
            f"{b} {results[b][-1][0]:.2f} s, {results[b][-1][1]:.0f}/{results[b][-1][2]:.0f} MB"
            for b in order
        )
        say(f"cold start run {run + 1}/{runs}: {shown}")
    return results


def load_encoders(model: str, folder: Path) -> dict[str, Encoder]:
    threads = available_cores()
    say(f"loading both encoders in-process ({threads} threads each)")
    return {
        "torch": SentenceTransformerEncoder(model, base_dir=ROOT, threads=threads),
        "onnx": OnnxEncoder(folder, threads=threads),
    }


def alternating(names: Sequence[str], index: int) -> list[str]:
    """The backends in turn order: swapped every other time, so neither always goes first."""
    return list(names) if index % 2 == 0 else list(reversed(names))


def single_latency(encoders: dict[str, Encoder], texts: list[str]) -> dict[str, list[float]]:
    """Milliseconds per ``encode([text])`` call, per backend, in blocks of ``BLOCK`` messages
    that alternate between the backends. Not text by text: each runtime's worker threads keep
    spinning a while after a call and would slow the other's next call (about 2x on 2 cores)."""
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for block, first in enumerate(range(0, len(texts), BLOCK)):
        for name in alternating(list(encoders), block):
            time.sleep(SETTLE)  # the other backend's threads go idle
            for text in texts[:WARM_UP]:
                encoders[name].encode([text])
            for text in texts[first : first + BLOCK]:
                start = time.perf_counter()
                encoders[name].encode([text])
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def batched(
    encoders: dict[str, Encoder], texts: list[str]
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Milliseconds per message of one ``encode(texts)`` call per round; the last vectors."""
    per_message: dict[str, list[float]] = {name: [] for name in encoders}
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(BATCH_ROUNDS):
        for name in alternating(list(encoders), round_):
            time.sleep(SETTLE)
            start = time.perf_counter()
            vectors[name] = encoders[name].encode(texts)
            per_message[name].append((time.perf_counter() - start) * 1000 / len(texts))
        say(f"batch round {round_ + 1}/{BATCH_ROUNDS} done")
    return per_message, vectors


def differences(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    gap = np.abs(a.astype(np.float64) - b.astype(np.float64))
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"max": float(gap.max()), "mean": float(gap.mean()), "min_cosine": float(cosine.min())}


def triage_settings(model: str, work: Path) -> Settings:
    """The shipped config.toml's settings, with WORK's cache and the shipped intents."""
    settings = load_settings(ROOT / "config.toml")
    matcher = settings.matcher.model_copy(
        update={"model": model, "cache_dir": str(work / "cache"), "intents_dir": "intents"}
    )
    return settings.model_copy(update={"matcher": matcher})


def decisions(
    encoders: dict[str, Encoder], settings: Settings, clinc: list[str]
) -> tuple[int, int]:
    """How many of the messages both backends decide identically (kind, intent, reasons)."""
    intents = load_intents(settings.path(settings.matcher.intents_dir), settings.placeholders)
    texts = intents.examples()[0] + clinc
    context = TriageContext(now=utcnow())  # one clock for both: business hours decide too
    outcomes = {}
    for name, encoder in encoders.items():
        triage = build_triage(settings, encoder)
        outcomes[name] = [
            (d.kind.value, d.intent, tuple(r.value for r in d.reasons))
            for d in (triage.decide(text, context) for text in texts)
        ]
    pairs = list(zip(texts, outcomes["torch"], outcomes["onnx"], strict=True))
    differing = [(text, a, b) for text, a, b in pairs if a != b]
    for text, a, b in differing[:10]:
        say(f"decision differs for {text!r}: torch {a}, onnx {b}")
    return len(texts) - len(differing), len(texts)


class Progress:
    """Passes ``encode`` through, saying on stderr every 15 s how many texts were encoded."""

    def __init__(self, encoder: Encoder, label: str) -> None:
        self._encoder, self._label, self._texts = encoder, label, 0
        self._started = self._said = time.perf_counter()

    @property
    def model_id(self) -> str:
        return self._encoder.model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._encoder.encode(texts)
        self._texts += len(texts)
        now = time.perf_counter()
        if now - self._said >= 15:
            self._said = now
            say(f"  {self._label}: {self._texts} texts encoded, {now - self._started:.0f} s")
        return vectors


def import_clinc(data_file: Path, out: Path) -> None:
    """``carebot intents import`` of CLINC150's train rows into ``out``, unless done before."""
    if out.exists():
        return
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with contextlib.redirect_stdout(sys.stderr):
        code = cli.main(["intents", "import", str(data_file), "--out", str(partial)])
    if code:
        raise RuntimeError(f"carebot intents import {data_file} failed (exit {code})")
    partial.rename(out)


def evaluate(
    data_dir: Path, work: Path, configs: dict[str, Path], encoders: dict[str, Encoder]
) -> dict[str, dict[str, Any]]:
    """``carebot eval --json`` per backend on CLINC150's test rows: the scorecards."""
    data_file = data_dir / "clinc150" / "data_full.json"
    intents = work / "clinc-intents"
    import_clinc(data_file, intents)
    cards = {}
    for name, config in configs.items():
        say(f"eval, {name}: CLINC150 test + oos_test through the real matcher and triage")
        argv = ["-c", str(config), "eval", "--intents", str(intents), "--test", str(data_file)]
        out = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = cli.main([*argv, "--json"], encoder=Progress(encoders[name], f"eval {name}"))
        if code:
            raise RuntimeError(f"carebot {' '.join(argv)} failed (exit {code})")
        cards[name] = json.loads(out.getvalue())
        say(f"eval, {name}: done in {time.perf_counter() - started:.0f} s")
    return cards


def goal(text: str, met: bool) -> str:
    return f"{text}: {'met' if met else 'MISSED'}"


def pair(label: str, values: dict[str, float], fmt: str, note: str = "") -> Row:
    """A row with both backends' values and the ratio onnx / torch."""
    torch, onnx = values["torch"], values["onnx"]
    ratio = f"{onnx / torch:.2f}x" if torch else "-"
    return label, format(torch, fmt), format(onnx, fmt), ratio, note


def one(label: str, value: str, note: str = "") -> Row:
    """A row with one value for the pair of backends (shown under onnx)."""
    return label, "", value, "", note


def medians(values: dict[str, list[float]]) -> dict[str, float]:
    return {b: statistics.median(v) for b, v in values.items()}


def cold_rows(r: dict[str, Any]) -> list[Row]:
    runs = r["cold_starts"]
    seconds, rss, hwm = ({b: [run[i] for run in runs[b]] for b in BACKENDS} for i in range(3))
    spread = {b: f"{min(seconds[b]):.2f}-{max(seconds[b]):.2f}" for b in BACKENDS}
    median_s, median_rss = medians(seconds), medians(rss)
    export_s = r["export_s"]
    return [
        one("export s", "existing" if export_s is None else f"{export_s:.1f}"),
        one("export max |difference| (manifest)", f"{r['manifest'].max_difference:.1e}", "<= 1e-5"),
        pair(
            "cold start to first bot> s, median",
            median_s,
            ".2f",
            goal("onnx < 1.5 s", median_s["onnx"] < 1.5),
        ),
        ("cold start s, min-max", spread["torch"], spread["onnx"], "", ""),
        pair(
            "peak RSS MB (ru_maxrss), median",
            median_rss,
            ".0f",
            goal("onnx < 300 MB", median_rss["onnx"] < 300),
        ),
        pair("RSS high-water at answer MB (VmHWM)", medians(hwm), ".0f"),
    ]


def encode_rows(r: dict[str, Any]) -> list[Row]:
    p50 = medians(r["single"])
    p99 = {b: percentile(r["single"][b], 99) for b in BACKENDS}
    speedup = p50["torch"] / p50["onnx"]
    return [
        pair(
            f"encode 1 message p50 ms ({SINGLE} msgs)",
            p50,
            ".2f",
            goal(f"torch/onnx {speedup:.1f}x >= 2x", speedup >= 2),
        ),
        pair("encode 1 message p99 ms", p99, ".2f"),
        pair(f"encode batch of {BATCH}, ms/message", medians(r["batch"]), ".2f"),
    ]


def agreement_rows(r: dict[str, Any]) -> list[Row]:
    diff, (same, total) = r["differences"], r["decisions"]
    return [
        one(f"embedding max |difference| ({DIFF})", f"{diff['max']:.1e}"),
        one("embedding mean |difference|", f"{diff['mean']:.1e}"),
        one("embedding min cosine", f"{diff['min_cosine']:.6f}"),
        one("identical decisions", f"{same}/{total}", goal("all identical", same == total)),
    ]


def eval_rows(cards: dict[str, dict[str, Any]]) -> list[Row]:
    if not cards:
        return [one("eval (CLINC150)", "skipped")]
    accuracy = {b: cards[b]["accuracy"] for b in BACKENDS}
    equal = f"{accuracy['torch']:.3f}" == f"{accuracy['onnx']:.3f}"
    rows = cards["torch"]["rows"]
    return [
        pair(
            f"eval accuracy (CLINC150, {rows} rows)",
            accuracy,
            ".3f",
            goal("equal to 3 decimals", equal),
        ),
        pair("eval coverage@0.97", {b: cards[b]["coverage_at"]["0.97"] for b in BACKENDS}, ".3f"),
        pair("eval latency p50 ms", {b: cards[b]["latency_ms"]["p50"] for b in BACKENDS}, ".2f"),
        pair("eval test rows s", {b: cards[b]["timings_s"]["rows_s"] for b in BACKENDS}, ".1f"),
    ]


def print_table(rows: list[Row]) -> None:
    print(f"{'metric':<42}{'torch':>12}{'onnx':>12}{'ratio':>8}  goal")
    for label, torch, onnx, ratio, note in rows:
        print(f"{label:<42}{torch:>12}{onnx:>12}{ratio:>8}  {note}".rstrip())
    print("ratio = onnx / torch; medians unless said; goals from the issue.")


def measure(args: argparse.Namespace, model: str, work: Path) -> dict[str, Any]:
    """Everything the table shows, in the order that keeps the measurements apart."""
    texts = clinc_texts(args.data_dir)
    r: dict[str, Any] = {}
    configs = {b: write_config(work, b, model) for b in BACKENDS}
    r["export_s"], r["manifest"] = ensure_export(model, configs["onnx"], work / "onnx")
    r["floor_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r["cold_starts"] = cold_starts(configs, args.runs)
    encoders = load_encoders(model, work / "onnx")
    say(f"encoding {SINGLE} messages one at a time")
    r["single"] = single_latency(encoders, texts[:SINGLE])
    say(f"encoding {BATCH} messages in one call, {BATCH_ROUNDS} rounds")
    r["batch"], vectors = batched(encoders, texts[:BATCH])
    r["differences"] = differences(vectors["torch"][:DIFF], vectors["onnx"][:DIFF])
    say("deciding the shipped intents' examples and CLINC150 sentences with both backends")
    r["decisions"] = decisions(encoders, triage_settings(model, work), texts[:DECIDE])
    r["cards"] = {} if args.skip_eval else evaluate(args.data_dir, work, configs, encoders)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="holds clinc150/data_full.json")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="[matcher] model")
    parser.add_argument("--work", type=Path, default=ROOT / ".carebot" / "bench-backends")
    parser.add_argument("--runs", type=int, default=5, help="timed chat processes per backend")
    parser.add_argument("--skip-eval", action="store_true", help="skip the CLINC150 eval")
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    model, work = model_name(args.model), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    r = measure(args, model, work)
    print(
        f"model {model}, {available_cores()} cores, {args.runs} cold starts per backend, "
        f"load average {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end; this "
        f"process's peak before the chat runs {r['floor_mb']:.0f} MB (the floor of ru_maxrss)"
    )
    print_table(cold_rows(r) + encode_rows(r) + agreement_rows(r) + eval_rows(r["cards"]))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
