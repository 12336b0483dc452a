"""Does the learning loop work? Rounds of traffic, topics accepted as intents, measured (issue 15).

    HF_HUB_OFFLINE=1 python bench/learning.py [DATA_DIR] [--config FILE] [--cache DIR]
                                              [--seed N] [--rounds 5] [--messages 600]
                                              [--examples 100] [--top 10] [--min-size 3]
                                              [--says-no-wrong 0.30] [--says-no-right 0.05]

DATA_DIR (default ``../shared/data`` beside the project) holds ``clinc150/data_full.json``.

* **Start**: 120 of CLINC150's 150 intents (drawn with ``--seed``, printed; the other 30 are
  *held out*), each with its first ``--examples`` ``train`` rows as examples and a stand-in
  answer, written as intent files by ``carebot intents import``'s code
  (:func:`carebot.nlu.intent_import.import_intents`) into a temporary folder.
* **The bot**: the shipped config (``--config``): its encoder as the service loads it (the ONNX
  export, made first when missing), its matcher and triage and their thresholds; the intents
  read from that folder.
* **Each round**: ``--messages`` fresh messages (never sent before, none of them an example)
  from CLINC's ``train``, ``val``, ``oos_train`` and ``oos_val`` rows (all 150 intents and out of
  scope; shuffled once with the seed), each decided by triage as a new conversation. Each
  answer gets the helpful survey ("Did that answer your question?", ``[survey] helpful``, asked
  after every bot answer by default) and its customer answers "No" with probability
  ``--says-no-wrong`` when the answer was wrong (an intent other than the message's label; any
  answer to an out-of-scope message) and ``--says-no-right`` when it was right (drawn with the
  seed: one number per message, whatever the rates). What triage did not answer (decision kind
  other than answer) and the answers said "No" to are the round's *unanswered* messages, as the
  insight page counts them (:mod:`carebot.insight.unanswered`: a "no" to the helpful survey is
  part of its definition), and are grouped by its :func:`carebot.insight.topics.group`. Their
  ``--top`` largest topics of at least ``--min-size`` messages are reviewed as an ops person
  would, with the messages' true labels:
  a topic whose majority label is out of scope is rejected; one whose majority label is an
  intent of the bot adds its messages (those not yet an example anywhere) as examples of it;
  otherwise it becomes a new intent named by the majority label, its messages as examples and a
  stand-in answer. Each accepted topic is saved through the ops console's editor
  (:class:`carebot.console.intent_files.IntentFiles`, checked and written atomically); then the
  folder is read again and the matcher rebuilt warm-started from the last one, as the live
  reload does (:mod:`carebot.reload`).
* **Measured after each round** (round 0: before any learning), on CLINC's ``test`` and
  ``oos_test`` rows: coverage of the held-out intents' messages (answered with the right intent;
  and answered at all) and auto-answer precision on all of them (right answers / answers; an
  answered out-of-scope message is wrong). Goal: coverage >= 0.5 within the rounds while
  precision stays >= 0.97 in every round.

``--top`` and ``--min-size`` were chosen on the train/val traffic, never on test figures.

The survey's rates are stated assumptions, not measured, fixed before any result with them was
seen: that 30% of the customers who got a wrong answer say so (an assumption about how many
answer the survey at all, and answer it truthfully), and that 5% of those who got the right
answer say "No" anyway (they wanted something else, a person, or tapped the wrong button). A
wrongly answered message is otherwise invisible to the loop: it is answered, confidently, as a
neighbouring intent. ``--says-no-wrong 0 --says-no-right 0`` leaves the survey out (the loop as
first measured).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from carebot.config import Settings, SurveySettings, load_settings  # noqa: E402
from carebot.console.intent_files import IntentFiles  # noqa: E402
from carebot.exceptions import CarebotError, DataError  # noqa: E402
from carebot.insight.topics import Asked, group  # noqa: E402
from carebot.models import Decision, DecisionKind  # noqa: E402
from carebot.nlu.embedding_cache import EmbeddingCache  # noqa: E402
from carebot.nlu.encoder import Encoder  # noqa: E402
from carebot.nlu.intent_import import OUT_OF_SCOPE_LABEL, import_intents  # noqa: E402
from carebot.nlu.intents import Intent, IntentSet, ParsedFiles, load_intents  # noqa: E402
from carebot.nlu.matcher import Matcher  # noqa: E402
from carebot.runtime import build_triage, embedding_cache, load_encoder  # noqa: E402
from carebot.triage import Triage, TriageContext  # noqa: E402

SEED, KNOWN, ROUNDS, MESSAGES, EXAMPLES, TOP, MIN_SIZE = 15, 120, 5, 600, 100, 10, 3
SAYS_NO_WRONG, SAYS_NO_RIGHT = 0.30, 0.05  # assumed (module docstring); never tuned
TRAFFIC_SPLITS = ("train", "val", "oos_train", "oos_val")
TEST_SPLITS = ("test", "oos_test")
GOAL_COVERAGE, GOAL_PRECISION = 0.5, 0.97
NOW = datetime(2026, 12, 1, tzinfo=UTC)
STAND_IN = "Stand-in answer about {label}, as an ops person would write it."

Row = tuple[str, str]  # text, label ("oos": out of scope)


@dataclass(frozen=True)
class Options:
    seed: int = SEED
    known: int = KNOWN
    rounds: int = ROUNDS
    messages: int = MESSAGES
    examples: int = EXAMPLES
    top: int = TOP
    min_size: int = MIN_SIZE
    says_no_wrong: float = SAYS_NO_WRONG  # chance a customer says "No" to a wrong answer
    says_no_right: float = SAYS_NO_RIGHT  # ... to a right one


@dataclass(frozen=True)
class Proposal:
    """A topic as the ops person reviews it: its messages and their majority label."""

    label: str
    purity: float  # share of its messages with the majority label
    rows: tuple[Row, ...]
    near: str | None  # the insight page's verdict: near this intent, or new (None)
    keywords: tuple[str, ...]


@dataclass
class Round:
    """One row of the table."""

    number: int
    sent: int = 0
    unanswered: int = 0  # not answered by triage
    said_no: int = 0  # answered, and the customer said "No" to "did that answer?"
    said_no_wrong: int = 0  # ... of them to a wrong answer
    new_intents: int = 0
    added_to: int = 0  # topics whose messages became examples of an intent the bot had
    rejected: int = 0  # out-of-scope topics
    examples_added: int = 0
    held_right: float = 0.0  # held-out test messages answered with the right intent
    held_answered: float = 0.0  # ... answered at all
    known_right: float = 0.0  # the 120 starting intents' test messages answered right
    precision: float = 0.0
    answers: int = 0
    intents: int = 0
    held_learned: int = 0  # held-out intents the bot has an intent for
    wrong: dict[str, int] = field(default_factory=dict)  # wrong answers: known / held / oos
    traffic: tuple[int, int] = (0, 0)  # the round's messages answered right, wrong
    proposals: list[tuple[Proposal, str]] = field(default_factory=list)


def normal(text: str) -> str:
    """The form in which two texts count as the same example (as the import compares them)."""
    return " ".join(text.casefold().split())


def read_clinc(data_dir: Path) -> dict[str, list[Row]]:
    path = data_dir / "clinc150" / "data_full.json"
    if not path.is_file():
        raise DataError(
            f"{path} is missing: DATA_DIR must hold clinc150/data_full.json as published "
            "(../shared/data beside the project here)"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    splits = (*TRAFFIC_SPLITS, *TEST_SPLITS)
    missing = [s for s in splits if s not in data]
    if missing:
        raise DataError(f"{path}: no {', '.join(missing)} key(s); expected CLINC150's layout")
    return {s: [(" ".join(text.split()), label) for text, label in data[s]] for s in splits}


def choose_known(data: dict[str, list[Row]], options: Options) -> tuple[list[str], list[str]]:
    """The starting intents and the held-out ones, drawn with the seed."""
    every = sorted({label for _, label in data["train"]} - {OUT_OF_SCOPE_LABEL})
    if not 0 < options.known < len(every):
        raise DataError(f"--known must be between 1 and {len(every) - 1}, not {options.known}")
    rng = np.random.default_rng(options.seed)
    known = sorted(rng.choice(every, options.known, replace=False).tolist())
    return known, sorted(set(every) - set(known))


def write_start(
    data: dict[str, list[Row]], known: Sequence[str], options: Options, work: Path
) -> Path:
    """The starting intent files (``work/intents``), written by the import from a CSV of the known
    intents' first ``examples`` train rows with a stand-in answer each (``work/start.csv``)."""
    per_intent: Counter[str] = Counter()
    work.mkdir(parents=True, exist_ok=True)
    source, folder = work / "start.csv", work / "intents"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent", "answer"])
        for text, label in data["train"]:
            if label in known and per_intent[label] < options.examples:
                per_intent[label] += 1
                writer.writerow([text, label, STAND_IN.format(label=label)])
    import_intents(source, folder)
    return folder


def traffic(data: dict[str, list[Row]], examples: set[str], seed: int) -> list[Row]:
    """Every train/val row (in scope and out) that is no example, shuffled with the seed; a text
    asked twice is sent once."""
    seen, rows = set(examples), []
    for split in TRAFFIC_SPLITS:
        for text, label in data[split]:
            if normal(text) not in seen:
                seen.add(normal(text))
                rows.append((text, label))
    order = np.random.default_rng(seed + 1).permutation(len(rows))
    return [rows[i] for i in order]


class Bot:
    """The triage of the intents in ``folder``, rebuilt after an edit as the live reload does."""

    def __init__(self, settings: Settings, encoder: Encoder, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.cache: EmbeddingCache = embedding_cache(settings, encoder)
        self.parsed = ParsedFiles()
        self.triage: Triage = build_triage(settings, encoder, self.cache, self.parsed)

    @property
    def intents(self) -> IntentSet:
        return self.triage.matcher.intents

    def reload(self) -> None:
        intents = load_intents(self.folder, self.settings.placeholders, self.parsed)
        current = self.triage.matcher
        matcher = Matcher.configured(
            self.settings.matcher,
            encoder=current.encoder,
            intents=intents,
            cache=self.cache,
            previous=current,
        )
        self.triage.use(matcher)

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        return self.cache.encode(list(texts), self.triage.matcher.encoder)

    def decide(self, texts: Sequence[str], vectors: np.ndarray) -> list[Decision]:
        """Each message decided as the first of a new conversation."""
        context = TriageContext(now=NOW)
        matches = self.triage.matcher.match_vectors(vectors)
        return [
            self.triage.decide_matched(text, match, context)
            for text, match in zip(texts, matches, strict=True)
        ]


def proposals(
    bot: Bot, rows: Sequence[Row], vectors: np.ndarray, options: Options
) -> list[Proposal]:
    """The ``top`` largest topics (of at least ``min_size``) of the unanswered ``rows``."""
    if not rows:
        return []
    asked = [Asked(i, i, i, text, NOW) for i, (text, _) in enumerate(rows)]
    ids = [intent.id for intent in bot.intents.intents]
    grouping = group(asked, vectors, bot.triage.matcher.scores(vectors), ids, now=NOW)
    found: list[Proposal] = []
    for topic in grouping.topics:
        if topic.messages < options.min_size or len(found) == options.top:
            break  # ranked by size (every message was asked at the same time)
        members = tuple(rows[i] for i in topic.message_ids)
        counts = Counter(label for _, label in members)
        top = max(counts.values())
        label = min(lab for lab, c in counts.items() if c == top)  # ties: alphabetically first
        found.append(
            Proposal(label, top / len(members), members, topic.near_intent, topic.keywords)
        )
    return found


def accept(files: IntentFiles, bot: Bot, proposal: Proposal, intents: IntentSet) -> tuple[str, int]:
    """Save one reviewed topic: ``("rejected" | "examples" | "new" | "nothing new", examples)``."""
    if proposal.label == OUT_OF_SCOPE_LABEL:
        return "rejected", 0
    taken = {normal(example) for intent in intents.intents for example in intent.examples}
    texts: list[str] = []
    for text, _ in proposal.rows:
        if normal(text) not in taken:
            taken.add(normal(text))
            texts.append(text)
    if not texts:
        return "nothing new", 0
    if proposal.label in intents:
        old = intents[proposal.label]
        assert old.file is not None
        base = files.read(str(old.file.relative_to(bot.folder)))
        intent = dataclasses.replace(old, examples=(*old.examples, *texts))
        files.save(base, intent, replaces=old.id)
        return "examples", len(texts)
    # a new intent joins the file of the intents sharing its id's first word, as the import
    # groups them; else it gets a file of its own
    shared = f"{proposal.label.split('_')[0]}.yaml"
    name = shared if (bot.folder / shared).exists() else f"{proposal.label}.yaml"
    intent = Intent(
        id=proposal.label, examples=tuple(texts), answer=STAND_IN.format(label=proposal.label)
    )
    files.save(files.read(name), intent, replaces=None)
    return "new", len(texts)


def measure(
    bot: Bot, test: Sequence[Row], vectors: np.ndarray, held: set[str], figures: Round
) -> None:
    """The test figures of ``bot`` into ``figures``."""
    decisions = bot.decide([text for text, _ in test], vectors)
    counts: Counter[str] = Counter()  # (part, outcome): held/known/oos x right/wrong/unanswered
    for decision, (_, label) in zip(decisions, test, strict=True):
        part = "oos" if label == OUT_OF_SCOPE_LABEL else "held" if label in held else "known"
        if decision.kind is not DecisionKind.ANSWER:
            counts[f"{part} unanswered"] += 1
        else:
            counts[f"{part} {'right' if decision.intent == label else 'wrong'}"] += 1
    held_n = max(sum(label in held for _, label in test), 1)
    known_n = max(sum(label not in held and label != OUT_OF_SCOPE_LABEL for _, label in test), 1)
    right = counts["held right"] + counts["known right"]
    figures.held_right = counts["held right"] / held_n
    figures.held_answered = (counts["held right"] + counts["held wrong"]) / held_n
    figures.known_right = counts["known right"] / known_n
    figures.wrong = {part: counts[f"{part} wrong"] for part in ("known", "held", "oos")}
    figures.answers = right + sum(figures.wrong.values())
    figures.precision = right / figures.answers if figures.answers else 1.0
    figures.intents = len(bot.intents)
    figures.held_learned = sum(label in bot.intents for label in held)


def learn(
    settings: Settings,
    encoder: Encoder,
    data: dict[str, list[Row]],
    options: Options,
    work: Path,
    *,
    say: Callable[[str], None] = print,
) -> list[Round]:
    """Run the rounds in ``work`` (a scratch folder); print and return each round's figures."""
    known, held_out = choose_known(data, options)
    held = set(held_out)
    say(f"known intents: {len(known)} drawn with seed {options.seed}; held out ({len(held)}):")
    say("  " + ", ".join(held_out))
    folder = write_start(data, known, options, work)
    bot = Bot(with_intents(settings, folder), encoder, folder)
    files = IntentFiles(directory=folder, placeholders=settings.placeholders)
    taken = {normal(e) for intent in bot.intents.intents for e in intent.examples}
    say(
        f"start: {len(bot.intents)} intents, {len(taken)} examples (the first "
        f"{options.examples} train rows of each), stand-in answers"
    )
    pool = traffic(data, taken, options.seed)
    if len(pool) < options.rounds * options.messages:
        raise DataError(
            f"only {len(pool)} traffic messages for {options.rounds} rounds of "
            f"{options.messages}: lower --messages or --examples"
        )
    test = [*data["test"], *data["oos_test"]]
    test_vectors = bot.vectors([text for text, _ in test])
    cfg = settings.matcher
    say(
        f"traffic: {len(pool)} train/val messages that are no example; test: {len(test)} "
        f"messages, {sum(label in held for _, label in test)} of them of held-out intents"
    )
    say(
        f"shipped thresholds: answer {cfg.answer_threshold}, draft {cfg.draft_threshold}, "
        f"clarify margin {cfg.clarify_margin} ({cfg.method}); per round the top {options.top} "
        f"topics of >= {options.min_size} messages are reviewed"
    )
    say(
        f"helpful survey ([survey] helpful = {settings.survey.helpful!r}): a customer says No to "
        f"a wrong answer with p {options.says_no_wrong:.2f}, to a right one with p "
        f"{options.says_no_right:.2f} (assumed, not measured; drawn with seed {options.seed} + 2);"
        " the answers said No to are grouped with the unanswered messages"
    )
    survey = np.random.default_rng(options.seed + 2)
    rounds = [Round(0)]
    measure(bot, test, test_vectors, held, rounds[0])
    for number in range(1, options.rounds + 1):
        started = time.perf_counter()
        batch = pool[(number - 1) * options.messages : number * options.messages]
        figures = one_round(bot, files, batch, options, Round(number), survey)
        measure(bot, test, test_vectors, held, figures)
        rounds.append(figures)
        say(
            f"\nround {number} ({time.perf_counter() - started:.0f} s): {figures.unanswered} "
            f"of {figures.sent} unanswered, {figures.traffic[0]} answered right, "
            f"{figures.traffic[1]} wrong; said No to {figures.said_no} answers "
            f"({figures.said_no_wrong} of them wrong); the topics reviewed:"
        )
        for proposal, action in figures.proposals:
            verdict = f"near {proposal.near}" if proposal.near else "new topic"
            mark = " (held out)" if proposal.label in held else ""
            say(
                f"  {len(proposal.rows):3} msgs, {verdict:30} {proposal.purity:4.0%} "
                f"{proposal.label}{mark} -> {action} | {', '.join(proposal.keywords[:3])}"
            )
    held_detail(bot, test, test_vectors, held_out, say)
    ceiling = Round(-1)
    every = sorted({label for _, label in data["train"]} - {OUT_OF_SCOPE_LABEL})
    whole = write_start(data, every, options, work / "all")
    measure(Bot(with_intents(settings, whole), encoder, whole), test, test_vectors, held, ceiling)
    report(rounds, ceiling, len(held), say)
    return rounds


def held_detail(
    bot: Bot,
    test: Sequence[Row],
    vectors: np.ndarray,
    held: Sequence[str],
    say: Callable[[str], None],
) -> None:
    """Each held-out intent after the last round: its examples and its test messages' coverage."""
    rows = [i for i, (_, label) in enumerate(test) if label in held]
    decisions = bot.decide([test[i][0] for i in rows], vectors[rows])
    right: Counter[str] = Counter()
    asked: Counter[str] = Counter()
    for decision, i in zip(decisions, rows, strict=True):
        label = test[i][1]
        asked[label] += 1
        right[label] += decision.kind is DecisionKind.ANSWER and decision.intent == label
    cells = [
        f"{label} {len(bot.intents[label].examples) if label in bot.intents else '-'} "
        f"{right[label] / asked[label]:.2f}"
        for label in sorted(held, key=lambda x: (-right[x] / max(asked[x], 1), x))
    ]
    say("\nheld-out intents after the last round (examples, test coverage):")
    for start in range(0, len(cells), 5):
        say("  " + "; ".join(cells[start : start + 5]))


def with_intents(settings: Settings, folder: Path) -> Settings:
    matcher = settings.matcher.model_copy(update={"intents_dir": str(folder)})
    return settings.model_copy(update={"matcher": matcher})


def asks_helpful(decision: Decision, survey: SurveySettings) -> bool:
    """Whether the customer is asked "did that answer your question?" after ``decision``: the
    policy of :meth:`carebot.survey.questions.Surveys.helpful_question`."""
    if survey.helpful == "never" or decision.kind is not DecisionKind.ANSWER:
        return False
    if decision.small_talk:
        return False
    return survey.helpful == "always" or decision.margin < survey.low_margin


def one_round(
    bot: Bot,
    files: IntentFiles,
    batch: Sequence[Row],
    options: Options,
    figures: Round,
    survey: np.random.Generator,
) -> Round:
    """Send ``batch``; its customers answer the helpful survey (``survey`` draws whether they say
    "No"); review the topics of what was not answered or said "No" to, save them and reload."""
    vectors = bot.vectors([text for text, _ in batch])
    decisions = bot.decide([text for text, _ in batch], vectors)
    draws = survey.random(len(batch))  # one per message, whatever the rates and decisions
    missed, answers = [], []
    for i, (decision, (_, label)) in enumerate(zip(decisions, batch, strict=True)):
        if decision.kind is not DecisionKind.ANSWER:
            figures.unanswered += 1
            missed.append(i)
            continue
        right = decision.intent == label
        answers.append(right)
        rate = options.says_no_right if right else options.says_no_wrong
        if asks_helpful(decision, bot.settings.survey) and draws[i] < rate:
            figures.said_no += 1
            figures.said_no_wrong += not right
            missed.append(i)
    figures.sent = len(batch)
    figures.traffic = (sum(answers), len(answers) - sum(answers))
    for proposal in proposals(bot, [batch[i] for i in missed], vectors[missed], options):
        intents = load_intents(bot.folder, bot.settings.placeholders, bot.parsed)
        action, added = accept(files, bot, proposal, intents)
        figures.proposals.append((proposal, action))
        figures.examples_added += added
        figures.new_intents += action == "new"
        figures.added_to += action == "examples"
        figures.rejected += action == "rejected"
    bot.reload()
    return figures


COLUMNS = (
    ("round", 5),
    ("sent", 5),
    ("unans", 6),
    ("said no", 8),
    ("new", 4),
    ("to old", 7),
    ("oos rej", 8),
    ("examples", 9),
    ("held right", 11),
    ("held answ", 10),
    ("known right", 12),
    ("precision", 10),
    ("answers", 8),
    ("wrong k/h/o", 13),
    ("intents", 8),
    ("held in", 8),
)


def report(rounds: Sequence[Round], ceiling: Round, held: int, say: Callable[[str], None]) -> None:
    say("")
    say(" ".join(f"{name:>{width}}" for name, width in COLUMNS))
    for r in [*rounds, ceiling]:
        wrong = "/".join(str(r.wrong[p]) for p in ("known", "held", "oos"))
        cells = (
            ("all" if r.number < 0 else r.number, r.sent, r.unanswered, r.said_no),
            (r.new_intents, r.added_to, r.rejected, r.examples_added, f"{r.held_right:.3f}"),
            (f"{r.held_answered:.3f}", f"{r.known_right:.3f}", f"{r.precision:.3f}", r.answers),
            (wrong, r.intents, f"{r.held_learned}/{held}"),
        )
        flat = [c for part in cells for c in part]
        say(" ".join(f"{c!s:>{width}}" for c, (_, width) in zip(flat, COLUMNS, strict=True)))
    say(
        "(unans: not answered by triage; said no: answers the customer said No to (both are "
        "grouped); held right / answ: share of the held-out intents' test messages answered "
        "with the right intent / at all; precision: right answers / answers over all test "
        "messages; wrong k/h/o: wrong answers to messages of the known intents / held-out "
        "intents / out of scope; "
        "all: a reference, every intent with its train rows from the start)"
    )
    covered = next((r.number for r in rounds if r.held_right >= GOAL_COVERAGE), None)
    best = max(r.held_right for r in rounds)
    precise = all(r.precision >= GOAL_PRECISION for r in rounds)
    lowest = min(r.precision for r in rounds)
    say(
        f"goal: held-out coverage >= {GOAL_COVERAGE} within {len(rounds) - 1} rounds: "
        + (f"met in round {covered}" if covered is not None else f"MISSED (best {best:.3f})")
    )
    say(
        f"goal: auto-answer precision >= {GOAL_PRECISION} in every round: "
        + ("met" if precise else f"MISSED (lowest {lowest:.3f})")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data_dir",
        type=Path,
        nargs="?",
        default=ROOT.parent / "shared" / "data",
        help="folder with clinc150/ (default ../shared/data)",
    )
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / ".carebot" / "bench-cache" / "learning",
        help="embedding cache",
    )
    parser.add_argument(
        "--seed", type=int, default=SEED, help="draws the held-out intents and the traffic"
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--messages", type=int, default=MESSAGES, help="per round")
    parser.add_argument(
        "--examples", type=int, default=EXAMPLES, help="train rows per starting intent"
    )
    parser.add_argument("--top", type=int, default=TOP, help="topics reviewed per round")
    parser.add_argument("--min-size", type=int, default=MIN_SIZE, help="smallest topic reviewed")
    parser.add_argument(
        "--says-no-wrong",
        type=float,
        default=SAYS_NO_WRONG,
        help='chance a customer says "No" to a wrong answer (assumed)',
    )
    parser.add_argument(
        "--says-no-right",
        type=float,
        default=SAYS_NO_RIGHT,
        help='chance a customer says "No" to a right answer (assumed)',
    )
    args = parser.parse_args()
    for name in ("says_no_wrong", "says_no_right"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(
                f"--{name.replace('_', '-')} is a probability: give a number between 0 and 1, "
                f"not {getattr(args, name)}"
            )
    options = Options(
        seed=args.seed,
        known=KNOWN,
        rounds=args.rounds,
        messages=args.messages,
        examples=args.examples,
        top=args.top,
        min_size=args.min_size,
        says_no_wrong=args.says_no_wrong,
        says_no_right=args.says_no_right,
    )
    started = time.perf_counter()
    try:
        settings = load_settings(args.config)
        cfg = settings.matcher.model_copy(update={"cache_dir": str(args.cache.resolve())})
        settings = settings.model_copy(update={"matcher": cfg})
        encoder = load_encoder(settings, export_if_missing=True)
        data = read_clinc(args.data_dir)
        with tempfile.TemporaryDirectory(prefix="carebot-learning-") as work:
            learn(settings, encoder, data, options, Path(work))
    except CarebotError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"\nTotal run {time.perf_counter() - started:.0f} s (embeddings cached in {args.cache}).")


if __name__ == "__main__":
    main()
