"""Unanswered questions grouped into topics, measured on CLINC150 (issue 14, section 4).

    HF_HUB_OFFLINE=1 python bench/unanswered.py DATA_DIR [--config FILE] [--cache DIR]
                                                [--seed N] [--tune]

DATA_DIR holds ``clinc150/data_full.json`` and ``domains.json`` (see its README).

* **The bot**: the shipped config (``--config``, default the repo's config.toml) and its triage,
  with an intent set of 120 of CLINC150's 150 intents (their ``train`` rows as examples; a fixed
  choice drawn with ``--seed``, printed; the 30 others are *held out*). Intents of CLINC's
  ``small_talk`` domain carry the ``smalltalk`` tag; an answer or a draft of one of them is
  small talk (``details["small_talk"]``), which is never unanswered (a message below the draft
  threshold was recognised as nothing, small talk neither).
* **Traffic**: every ``test`` row (all 150 intents) and every ``oos_test`` row, one message per
  new conversation, encoded in batches by the encoder ``carebot serve`` uses (the ONNX export,
  made first when missing), then matched and decided as the pipeline does.
* **Unanswered**: what :func:`carebot.insight.unanswered.is_unanswered` says the bot did not
  answer; they are grouped by :func:`carebot.insight.topics.group` with the shipped
  :class:`~carebot.insight.topics.TopicSettings`.

Printed, from one run: NMI and ARI of the topics on the held-out intents' unanswered messages
(true label: the intent; a message in no topic counts as a cluster of its own), beside k-means
with the true k (30) on the same messages' embeddings, and each one's time; the share of the
known intents' messages that fell below the answer threshold whose topic names their own intent
as "near"; where the out-of-scope (and the held-out) messages went; and the time to group
10,000 messages (9,800 ``train`` rows drawn with the seed + the 200 ``oos_train`` and
``oos_val`` rows, as if none had been answered; the PCA + HDBSCAN path).

``--tune`` chooses the settings on the ``val`` + ``oos_val`` traffic (never on test): the
distance with the best NMI + ARI on the held-out intents' messages, then the near cutoff with the
best (known messages named right + out-of-scope messages in new topics). The shipped
TopicSettings hold what it chose with seed 14.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from carebot.config import Settings, load_settings  # noqa: E402
from carebot.exceptions import CarebotError  # noqa: E402
from carebot.insight.topics import DEFAULTS, Asked, Grouping, TopicSettings, cluster, group  # noqa: E402
from carebot.insight.unanswered import is_unanswered  # noqa: E402
from carebot.models import Decision, DecisionKind, Reason  # noqa: E402
from carebot.nlu.emotion import EmotionScorer  # noqa: E402
from carebot.nlu.intents import Intent, IntentSet  # noqa: E402
from carebot.nlu.matcher import Matcher  # noqa: E402
from carebot.nlu.question_sets import clinc150_domain  # noqa: E402
from carebot.triage import Triage, TriageContext  # noqa: E402

KNOWN, SEED = 120, 14
SMALL_TALK = "smalltalk"
RECOGNISED = (DecisionKind.ANSWER, DecisionKind.DRAFT)  # a small-talk intent recognised
NOW = datetime(2026, 12, 1, tzinfo=UTC)
GOALS = {"nmi": 0.85, "ari": 0.60, "near": 0.90, "seconds": 10.0}
ANCHORS = (("USNID, unsupervised (all CLINC150)", 0.910, 0.685), ("k-means on GloVe", 0.711, 0.277))
DISTANCES = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
CUTOFFS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
Encode = Callable[[str, Sequence[str]], tuple[np.ndarray, float]]  # (name, texts) -> vectors, s


@dataclass(frozen=True)
class Rows:
    name: str  # names the cached embeddings, e.g. "clinc150/test"
    texts: list[str]
    labels: list[str]  # "oos": out of scope
    vectors: np.ndarray


@dataclass(frozen=True)
class Traffic:
    """What the bot did not answer of some rows: their positions, labels and decisions."""

    rows: Rows
    kept: list[int]  # positions in rows of the unanswered messages
    decisions: list[Decision]  # of every row
    small_talk: int  # rows left out as small talk

    def labels(self) -> list[str]:
        return [self.rows.labels[i] for i in self.kept]

    def vectors(self) -> np.ndarray:
        return self.rows.vectors[self.kept]


class Precomputed:
    """An encoder over embeddings computed beforehand (the matcher's examples)."""

    model_id = "precomputed"

    def __init__(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self._rows = dict(zip(texts, vectors, strict=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._rows[text] for text in texts])


def embeddings(settings: Settings, cache: Path) -> Encode:
    """``(rows name, texts) -> (vectors, seconds)`` from the ONNX export ``carebot serve`` uses
    (exported first if missing or stale), cached under ``cache``."""
    from carebot.nlu.dataset_embeddings import DatasetEmbeddings, progress_bars
    from carebot.nlu.model_export import export_in_child
    from carebot.nlu.onnx_encoder import Manifest, OnnxEncoder, export_problem
    from carebot.runtime import onnx_folder

    model, folder = settings.matcher.model, onnx_folder(settings)
    if export_problem(folder, model, settings.base_dir) is not None:
        print(f"exporting {model} to ONNX in {folder} (once, about 20 s)...", flush=True)
        export_in_child(model, folder, base_dir=settings.base_dir)
    print(f"encoder: {model}, ONNX export {folder}")
    store = DatasetEmbeddings(
        folder=cache,
        model=model,
        model_id=f"{Manifest.read(folder).source_id}+onnx",
        load=lambda: OnnxEncoder(folder),
        progress=progress_bars(),
    )
    return store.of


def read_rows(data_dir: Path, encode: Encode, *splits: str) -> Rows:
    data = json.loads((data_dir / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    pairs = [pair for split in splits for pair in data[split]]
    texts, labels = [t for t, _ in pairs], [label for _, label in pairs]
    name = "clinc150/" + "+".join(splits)
    vectors, seconds = encode(name, texts)
    print(f"{name}: {len(texts)} rows, encoded in {seconds:.1f} s (cached after the first run)")
    return Rows(name, texts, labels, np.asarray(vectors, dtype=np.float32))


def build_triage(
    settings: Settings, train: Rows, known: list[str], small: frozenset[str]
) -> Triage:
    """The shipped config's triage over the known intents (train rows as examples)."""
    examples: dict[str, list[str]] = {}
    for text, label in zip(train.texts, train.labels, strict=True):
        if label in known:
            examples.setdefault(label, []).append(text)
    intents = IntentSet(
        tuple(
            Intent(i, tuple(examples[i]), answer=f"(the answer of {i})", tags=_tags(i, small))
            for i in known
        )
    )
    encoder = Precomputed(train.texts, train.vectors)
    matcher = Matcher.configured(settings.matcher, encoder=encoder, intents=intents)
    weights = (
        settings.path(settings.emotion.head_weights) if settings.emotion.head_weights else None
    )
    dim, model = train.vectors.shape[1], settings.matcher.model
    emotion = EmotionScorer(settings.emotion, head_weights=weights, dim=dim, model=model)
    return Triage(matcher=matcher, emotion=emotion, settings=settings)


def _tags(intent: str, small: frozenset[str]) -> tuple[str, ...]:
    return (SMALL_TALK,) if intent in small else ()


def run_traffic(triage: Triage, rows: Rows) -> Traffic:
    """Decide every row as a new conversation's first message; keep what was not answered."""
    intents = triage.matcher.intents
    context = TriageContext(now=NOW)
    decisions = [
        triage.decide_matched(text, match, context)
        for text, match in zip(rows.texts, triage.matcher.match_vectors(rows.vectors), strict=True)
    ]
    kept, small_talk = [], 0
    for i, d in enumerate(decisions):
        small = (
            d.kind in RECOGNISED and d.intent is not None and SMALL_TALK in intents[d.intent].tags
        )
        if is_unanswered(d.kind.value, [r.value for r in d.reasons], {"small_talk": small}):
            kept.append(i)
        elif small and is_unanswered(d.kind.value, [r.value for r in d.reasons], {}):
            small_talk += 1
    return Traffic(rows, kept, decisions, small_talk)


def grouped(triage: Triage, traffic: Traffic, settings: TopicSettings) -> tuple[Grouping, float]:
    """The topics of the unanswered traffic and the seconds grouping took."""
    vectors = traffic.vectors()
    asked = [
        Asked(i, i, i, traffic.rows.texts[i], NOW - timedelta(hours=i % 97)) for i in traffic.kept
    ]
    ids = [intent.id for intent in triage.matcher.intents.intents]
    started = time.perf_counter()
    result = group(asked, vectors, triage.matcher.scores(vectors), ids, now=NOW, settings=settings)
    return result, time.perf_counter() - started


def topic_labels(grouping: Grouping) -> np.ndarray:
    """A cluster label per message: its topic, or one of its own when it is in no topic."""
    n = len(grouping.topics)
    loose = iter(range(n, n + len(grouping.topic_of)))
    return np.array([t if t is not None else next(loose) for t in grouping.topic_of])


def agreement(truth: Sequence[str], labels: np.ndarray) -> tuple[float, float]:
    return normalized_mutual_info_score(truth, labels), adjusted_rand_score(truth, labels)


def held_out_scores(traffic: Traffic, grouping: Grouping, held: set[str]) -> dict[str, float]:
    """NMI/ARI of the topics and of k-means (true k) on the held-out intents' messages; and of
    the clustering step alone on those messages only."""
    labels = traffic.labels()
    rows = [j for j, label in enumerate(labels) if label in held]
    truth = [labels[j] for j in rows]
    vectors = traffic.vectors()[rows]
    out: dict[str, float] = {"messages": len(rows), "intents": len(set(truth))}
    out["nmi"], out["ari"] = agreement(truth, topic_labels(grouping)[rows])
    out["topics"] = len({grouping.topic_of[j] for j in rows} - {None})
    started = time.perf_counter()
    alone = cluster(vectors, DEFAULTS)
    out["alone_s"] = time.perf_counter() - started
    out["alone_nmi"], out["alone_ari"] = agreement(truth, alone)
    started = time.perf_counter()
    kmeans = KMeans(len(set(truth)), n_init=10, random_state=0).fit_predict(vectors)
    out["kmeans_s"] = time.perf_counter() - started
    out["kmeans_nmi"], out["kmeans_ari"] = agreement(truth, kmeans)
    return out


def verdicts(
    triage: Triage, traffic: Traffic, grouping: Grouping, known: set[str]
) -> dict[str, float]:
    """How the verdicts went: for the known intents' messages below the answer threshold, and
    for the out-of-scope and held-out messages."""
    labels = traffic.labels()
    below = [
        j
        for j, i in enumerate(traffic.kept)
        if labels[j] in known and Reason.BELOW_THRESHOLD in traffic.decisions[i].reasons
    ]
    named = [_near(grouping, j) for j in below]
    right = sum(1 for j, x in zip(below, named, strict=True) if x == labels[j])
    near = sum(1 for x in named if x is not None)
    top1 = sum(1 for j in below if traffic.decisions[traffic.kept[j]].intent == labels[j])
    out = {
        "below": len(below),
        "right": right / max(len(below), 1),
        "precision": right / max(near, 1),
    }
    out["top1"] = top1 / max(len(below), 1)
    unknown = [0, 0]  # out-of-scope and held-out messages: in a new topic, all
    oos = [j for j, x in enumerate(labels) if x == "oos"]
    held = [j for j, x in enumerate(labels) if x not in known and x != "oos"]
    for name, rows in (("oos", oos), ("held", held)):
        places = Counter(_place(grouping, j) for j in rows)
        out[f"{name}_unanswered"] = len(rows)
        out |= {f"{name}_{p}": places[p] / max(len(rows), 1) for p in ("new", "near", "none")}
        unknown[0] += places["new"]
        unknown[1] += len(rows)
    out["balanced"] = (out["right"] + unknown[0] / max(unknown[1], 1)) / 2
    return out


def _near(grouping: Grouping, row: int) -> str | None:
    t = grouping.topic_of[row]
    return None if t is None else grouping.topics[t].near_intent


def _place(grouping: Grouping, row: int) -> str:
    t = grouping.topic_of[row]
    if t is None:
        return "none"
    return "new" if grouping.topics[t].near_intent is None else "near"


def ten_thousand(triage: Triage, train: Rows, oos: Rows, seed: int) -> dict[str, float]:
    """Grouping 10,000 messages: 9,800 train rows (drawn with ``seed``) and 200 oos rows."""
    pick = np.sort(np.random.default_rng(seed).choice(len(train.texts), 9800, replace=False))
    vectors = np.concatenate([train.vectors[pick], oos.vectors])
    texts = [train.texts[i] for i in pick] + oos.texts
    labels = [train.labels[i] for i in pick] + oos.labels
    asked = [Asked(i, i, i, t, NOW - timedelta(hours=i % 97)) for i, t in enumerate(texts)]
    ids = [intent.id for intent in triage.matcher.intents.intents]
    times = []
    for _ in range(3):
        started = time.perf_counter()
        result = group(asked, vectors, triage.matcher.scores(vectors), ids, now=NOW)
        times.append(time.perf_counter() - started)
    out = {"seconds": min(times), "worst": max(times), "topics": len(result.topics)}
    out["loose"] = result.loose
    out["nmi"], out["ari"] = agreement(labels, topic_labels(result))
    return out


def tune(triage: Triage, traffic: Traffic, known: set[str], held: set[str]) -> TopicSettings:
    """Choose the distance, then the near cutoff, on ``traffic`` (the val rows)."""
    labels = traffic.labels()
    rows = [j for j, label in enumerate(labels) if label in held]
    truth = [labels[j] for j in rows]
    print(f"\n--tune on {traffic.rows.name}: {len(traffic.kept)} unanswered, {len(rows)} held out")
    best_distance, best = DEFAULTS.distance, -1.0
    for distance in DISTANCES:
        clusters = cluster(traffic.vectors(), replace(DEFAULTS, distance=distance))
        nmi, ari = agreement(truth, clusters[rows])
        print(f"  distance {distance:.2f}: NMI {nmi:.3f} ARI {ari:.3f}")
        if nmi + ari > best:
            best_distance, best = distance, nmi + ari
    chosen, best, best_cutoff = (
        replace(DEFAULTS, distance=best_distance),
        -1.0,
        DEFAULTS.near_cutoff,
    )
    for cutoff in CUTOFFS:
        settings = replace(chosen, near_cutoff=cutoff)
        v = verdicts(triage, traffic, grouped(triage, traffic, settings)[0], known)
        print(
            f"  near cutoff {cutoff:.2f}: known named right {v['right']:.3f}, out of scope / "
            f"held out in new topics {v['oos_new']:.3f} / {v['held_new']:.3f}: balanced "
            f"{v['balanced']:.3f}"
        )
        if v["balanced"] > best:
            best_cutoff, best = cutoff, v["balanced"]
    chosen = replace(chosen, near_cutoff=best_cutoff)
    shipped = (
        "= the shipped defaults" if chosen == DEFAULTS else "(differ from the shipped defaults)"
    )
    print(f"  chosen: distance {chosen.distance}, near cutoff {chosen.near_cutoff} {shipped}")
    return chosen


def report(
    held: dict[str, float], seconds: float, v: dict[str, float], big: dict[str, float]
) -> None:
    n, k = int(held["messages"]), int(held["intents"])
    print(f"\nTopics on the {k} held-out intents' unanswered messages ({n}; true label: intent)")
    rows = [
        ("carebot topics, k not given (all unanswered)", held["nmi"], held["ari"], seconds),
        ("  its clustering alone, these messages only", *_of(held, "alone")),
        (f"k-means, true k = {k}, these messages", *_of(held, "kmeans")),
        *((f"published: {name}", nmi, ari, None) for name, nmi, ari in ANCHORS),
    ]
    print(f"{'':46} {'NMI':>6} {'ARI':>6} {'time s':>7}")
    for name, nmi, ari, took in rows:
        print(f"{name:46} {nmi:6.3f} {ari:6.3f} {'' if took is None else f'{took:7.2f}':>7}")
    print(f"{'goal, k not given':46} {GOALS['nmi']:>6} {GOALS['ari']:>6}")
    print(f"(held-out messages in {int(held['topics'])} topics)")
    print(f"\nKnown intents' messages below the answer threshold: {int(v['below'])}")
    print(f"  in a topic near their own intent     {v['right']:6.1%}   goal >= {GOALS['near']:.0%}")
    print(f"  of those in a near topic: named right {v['precision']:6.1%}")
    print(f"  the matcher's own best intent right   {v['top1']:6.1%}")
    for key, words in (("oos", "Out-of-scope"), ("held", "Held-out intents'")):
        print(
            f"{words} unanswered messages ({int(v[key + '_unanswered'])}): in a new topic "
            f"{v[key + '_new']:.1%}, near an intent {v[key + '_near']:.1%}, in no topic "
            f"{v[key + '_none']:.1%}"
        )
    print(f"Verdict balanced accuracy (known named right, others new): {v['balanced']:.3f}")
    print(
        f"\nGrouping 10,000 messages (PCA + HDBSCAN): {big['seconds']:.2f} s, best of 3 "
        f"(worst {big['worst']:.2f} s)   goal < {GOALS['seconds']:.0f} s"
    )
    print(
        f"  {int(big['topics'])} topics, {int(big['loose'])} messages in none; against the CLINC "
        f"labels NMI {big['nmi']:.3f} ARI {big['ari']:.3f}"
    )


def _of(figures: dict[str, float], prefix: str) -> tuple[float, float, float]:
    return figures[f"{prefix}_nmi"], figures[f"{prefix}_ari"], figures[f"{prefix}_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder with clinc150/")
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--cache", type=Path, default=ROOT / ".carebot" / "bench-cache")
    parser.add_argument("--seed", type=int, default=SEED, help="draws the known intents")
    parser.add_argument("--tune", action="store_true", help="choose the settings on val")
    args = parser.parse_args()
    try:
        run(args)
    except CarebotError as exc:
        parser.exit(2, f"error: {exc}\n")


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    settings = load_settings(args.config)
    encode = embeddings(settings, args.cache)
    train = read_rows(args.data_dir, encode, "train")
    everything = sorted(set(train.labels))
    rng = np.random.default_rng(args.seed)
    known = sorted(rng.choice(everything, KNOWN, replace=False).tolist())
    held = sorted(set(everything) - set(known))
    print(
        f"known intents: {len(known)} drawn with seed {args.seed}; held out ({len(held)}): "
        + ", ".join(held)
    )
    small = clinc150_domain(args.data_dir, "small_talk")
    triage = build_triage(settings, train, known, small)
    chosen = DEFAULTS
    if args.tune:
        val = run_traffic(triage, read_rows(args.data_dir, encode, "val", "oos_val"))
        chosen = tune(triage, val, set(known), set(held))
    test = run_traffic(triage, read_rows(args.data_dir, encode, "test", "oos_test"))
    answered = len(test.rows.texts) - len(test.kept)
    print(
        f"test traffic: {len(test.rows.texts)} messages, {len(test.kept)} unanswered, {answered} "
        f"answered or handed over otherwise ({test.small_talk} small talk left out)"
    )
    grouping, grouping_s = grouped(triage, test, chosen)
    near = sum(t.near_intent is not None for t in grouping.topics)
    print(
        f"{len(grouping.topics)} topics ({near} near an intent), {grouping.loose} messages in "
        "none; the first five:"
    )
    for topic in grouping.topics[:5]:
        verdict = (
            f"near {topic.near_intent} ({topic.near_score:.2f})" if topic.near_intent else "new"
        )
        words = ", ".join(topic.keywords)
        print(f"  {topic.messages:3} messages, {verdict}: {words} | {topic.examples[0]!r}")
    held_scores = held_out_scores(test, grouping, set(held))
    v = verdicts(triage, test, grouping, set(known))
    oos = read_rows(args.data_dir, encode, "oos_train", "oos_val")
    big = ten_thousand(triage, train, oos, args.seed)
    report(held_scores, grouping_s, v, big)
    print(f"\nTotal run {time.perf_counter() - started:.0f} s (embeddings cached in {args.cache}).")


if __name__ == "__main__":
    main()
