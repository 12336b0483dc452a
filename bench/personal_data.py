"""Recall and precision of the personal data detector on seeded agent replies (issue 15, §3).

    python bench/personal_data.py [--seed N] [--replies N]

A seeded generator writes realistic agent replies: templates with a customer's details inserted
(names, e-mail addresses, phone numbers, order numbers, cards and IBANs, postal addresses), and
as many clean replies with look-alike numbers that are not personal (prices, dates, times,
quantities, tracking links, parcel weights, percentages, opening hours, article numbers).
Every value is made up here from small word lists and random digits; nothing is downloaded.

Printed: the seed; per kind, how many seeded details a finding of that kind overlaps (recall);
the precision of all findings (a finding is right when it overlaps a seeded detail of its
kind); how many clean replies had any finding; the time per reply.

The patterns were adjusted on seed 1 (the tuning set) only. Seed 2 was then measured once: one
wrong finding (``+4917621084665``'s digits passed Luhn and were taken for a card); after that
fix (no card right after ``+``), seed 3 (the default), never looked at before, was measured.
Some templates hold what the detector is documented not to find (a name only in running text
after a plain "Hello,", "Am Markt 3" without a street word), so recall below 1 is expected.
The set is written by the same hands as the patterns: its figures are an upper bound for real
replies, not a promise.

Measured (2,000 replies each, this machine)::

    seed 2 (before the "+" fix): recall email 1.000, phone 0.998, order 1.000, payment 1.000,
        address 0.989, name 0.918, overall 0.958; precision 0.9997 (3208/3209); 0/1000 clean
        replies flagged; 153 µs per reply
    seed 3 (reported):           recall email 1.000, phone 1.000, order 1.000, payment 1.000,
        address 0.988, name 0.932, overall 0.965; precision 1.000 (3291/3291); 0/1000 clean
        replies flagged; 155 µs per reply

The names missed are those only in running text after a plain "Hello," (not detected by
design without ``known_names``); the addresses missed are the "Am Markt N" ones.
"""

from __future__ import annotations

import argparse
import random
import re
import string
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from carebot.nlu.personal_data import KINDS, find_personal_data, luhn_valid


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST = _words(
    "Anna Tom Lukas Sophie Maria Jonas Emma Oliver Charlotte Ben Laura Felix Hannah Paul Mia "
    "James Olivia Noah Amelia George Isla Jack Grace Harry Chloe Leon Lena Finn Clara Elias"
)
LAST = _words(
    "Schmidt Müller Weber Fischer Wagner Becker Hoffmann Schäfer Koch Richter Smith Jones "
    "Taylor Brown Williams Wilson Evans Thomas Johnson Roberts Walker Wright Robinson "
    "Thompson"
)
DOMAINS = ("example.com", "mail.de", "gmx.net", "web.de", "outlook.com", "posteo.de", "yahoo.co.uk")
STREETS_DE = _words(
    "Hauptstraße Bahnhofstraße Lindenweg Schillerstraße Gartenweg Goethestraße Kirchgasse "
    "Marktplatz Parkallee Rosenweg Bergstraße"
)
STREETS_DE_TWO = ("Berliner Straße", "Lange Straße", "Hamburger Allee", "Alte Gasse", "Am Markt")
CITIES_DE = ("Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Leipzig", "Bad Homburg")
STREETS_EN = ("Baker Street", "Oak Road", "High Street", "Mill Lane", "Church Road", "Park Avenue")
CITIES_EN = ("London", "Leeds", "Bristol", "Manchester", "York")
AGENTS = ("Tom", "Sarah", "Jonas", "Priya", "Mark")


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def _card(rng: random.Random) -> str:
    body = rng.choice("45") + _digits(rng, 14)
    check = next(d for d in string.digits if luhn_valid(body + d))
    number = body + check
    return rng.choice([number, " ".join(number[i : i + 4] for i in range(0, 16, 4))])


def _iban(rng: random.Random) -> str:
    country, bban = rng.choice([("DE", _digits(rng, 18)), ("GB", "NWBK" + _digits(rng, 14))])
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    iban = f"{country}{98 - numeric % 97:02d}{bban}"
    return rng.choice([iban, " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))])


def _phone(rng: random.Random) -> str:
    return rng.choice(
        [
            f"+49 30 {_digits(rng, 7)}",
            f"+49 (0)171 {_digits(rng, 7)}",
            f"0{rng.randint(30, 89)} {_digits(rng, 7)}",
            f"0171/{_digits(rng, 7)}",
            f"0151-{_digits(rng, 4)} {_digits(rng, 4)}",
            f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}",
            f"07700 {_digits(rng, 6)}",
            f"0044 161 {_digits(rng, 3)} {_digits(rng, 4)}",
            f"({rng.randint(201, 989)}) {_digits(rng, 3)}-{_digits(rng, 4)}",
            f"{rng.randint(201, 989)}-{_digits(rng, 3)}-{_digits(rng, 4)}",
            f"+1 {rng.randint(201, 989)} {_digits(rng, 3)} {_digits(rng, 4)}",
            f"+49176{_digits(rng, 8)}",
            f"0176 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
        ]
    )


def _ascii(word: str) -> str:
    return word.replace("ü", "ue").replace("ä", "ae").replace("ö", "oe")


def _address(rng: random.Random) -> str:
    if rng.random() < 0.6:
        street = rng.choice([*STREETS_DE, *STREETS_DE_TWO])
        number = f"{rng.randint(1, 180)}{rng.choice(['', '', 'a', 'b'])}"
        city = f"{rng.randint(10000, 99999)} {rng.choice(CITIES_DE)}"
        return rng.choice([f"{street} {number}, {city}", f"{street} {number}"])
    area = rng.choice(["SW1A", "NW1", "M1", "LS2", "BS8"])
    postcode = f"{area} {rng.randint(1, 9)}{rng.choice('ABDEFGHJ')}{rng.choice('LNPQRSTUWX')}"
    line = f"{rng.randint(1, 250)} {rng.choice(STREETS_EN)}"
    return rng.choice([f"{line}, {rng.choice(CITIES_EN)} {postcode}", line])


def _order(rng: random.Random) -> str:
    return rng.choice(
        [f"#{_digits(rng, 5)}", f"NW-2026-{_digits(rng, 5)}", f"{rng.randint(10000, 999999)}"]
    )


PERSONAL_BODY = (
    "I have checked order {order} for you and it left our warehouse today.",
    "Your order {order} is on its way.",
    "We have sent the confirmation for order no. {order} to {email} again.",
    "Please confirm that {email} is still the right address.",
    "The courier will call you on {phone} before delivery.",
    "We tried to reach you at {phone} but could not get through.",
    "The parcel will be delivered to {address}.",
    "I have changed the delivery address to {address} as requested.",
    "The refund has gone to the card ending in {payment}.",
    "We will transfer the amount to your account {payment} within 3 days.",
    "{name}, could you send us a photo of the damaged item?",
    "I have noted the new phone number {phone} on your account.",
    "Thanks for waiting, {name}.",
    "My colleague will call {name} back tomorrow.",
)
CLEAN_BODY = (
    "Your parcel weighs 2.5 kg and costs €4.99 to send.",
    "The item is back in stock from 12.03.2026, priced at €129.00.",
    "Our hotline is open Monday to Friday, 10:00-18:00.",
    "You can track the parcel here: https://track.example.com/parcel/{tracking}",
    "Returns are free within 30 days; the refund takes 5-7 working days.",
    "We have 1,250 units in stock and orders above 50 EUR ship free.",
    "The discount of 15% applies until 2026-12-31.",
    "Article number 4006381333931 is the 2 x 500 g pack.",
    "Delivery takes 2-3 days; in 98.5% of cases it arrives on time.",
    "The total was 1.299,00 EUR including 19% VAT.",
    "Please allow 24 to 48 hours for the update, version 2.14.3 of the app fixes it.",
    "The size chart lists 38, 40 and 42 for this model.",
)
GREETINGS = (
    "Hi {name},",
    "Dear {title} {last},",
    "Hello {name},",
    "Hallo {name},",
    "Hi there,",
    "Hello,",
)
SIGN_OFFS = (
    "Kind regards,\n{agent}",
    "Thanks, {agent}",
    "Best wishes,\nThe Northwind team",
    "Cheers!",
)


@dataclass(frozen=True)
class Reply:
    """A generated reply and the spans of the personal data put into it."""

    text: str
    spans: tuple[tuple[str, int, int], ...]


def _render(parts: list[str], values: dict[str, str]) -> Reply:
    text, spans = "", []
    for part in parts:
        for piece in re.split(r"(\{\w+\})", part):
            key = piece[1:-1] if piece.startswith("{") else None
            if key is None:
                text += piece
                continue
            value = values[key]
            kind = {"last": "name", "agent": "name", "title": None, "tracking": None}.get(key, key)
            if kind:
                spans.append((kind, len(text), len(text) + len(value)))
            text += value
        text += "\n" if part.endswith(",") or part is parts[-2] else " "
    return Reply(text.rstrip(), tuple(spans))


def generate(rng: random.Random, *, personal: bool) -> Reply:
    """One agent reply; with ``personal``, 1-3 sentences carry a customer's details."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    values = {
        "name": rng.choice([first, f"{first} {last}"]),
        "last": last,
        "title": rng.choice(["Mr", "Mrs", "Ms", "Mr.", "Herr", "Frau"]),
        "agent": rng.choice(AGENTS),
        "email": f"{rng.choice([first.lower(), first[0].lower()])}.{_ascii(last.lower())}"
        f"{rng.choice(['', str(rng.randint(1, 99))])}@{rng.choice(DOMAINS)}",
        "phone": _phone(rng),
        "order": _order(rng),
        "payment": rng.choice([_card(rng), _iban(rng)]),
        "address": _address(rng),
        "tracking": _digits(rng, 20),
    }
    if personal:
        greeting = rng.choice(GREETINGS[:4] + GREETINGS[-1:])
        body = rng.sample(PERSONAL_BODY, rng.randint(1, 3)) + rng.sample(
            CLEAN_BODY, rng.randint(0, 2)
        )
        sign_off = rng.choice(SIGN_OFFS)
    else:
        greeting = rng.choice(GREETINGS[4:])
        body = rng.sample(CLEAN_BODY, rng.randint(2, 4))
        sign_off = rng.choice(SIGN_OFFS[2:])
    rng.shuffle(body)
    return _render([greeting, *body, sign_off], values)


def measure(replies: list[Reply]) -> None:
    """Print recall per kind, precision, clean replies flagged and time per reply."""
    seeded, hit, right, total, clean_flagged = Counter(), Counter(), 0, 0, 0
    started = time.perf_counter()
    results = [find_personal_data(reply.text) for reply in replies]
    elapsed = time.perf_counter() - started
    for reply, findings in zip(replies, results, strict=True):
        for kind, start, end in reply.spans:
            seeded[kind] += 1
            hit[kind] += any(f.kind == kind and f.start < end and start < f.end for f in findings)
        for f in findings:
            total += 1
            right += any(k == f.kind and f.start < e and s < f.end for k, s, e in reply.spans)
        clean_flagged += not reply.spans and bool(findings)
    for kind in KINDS:
        share = hit[kind] / max(seeded[kind], 1)
        print(f"  recall {kind:<8} {share:.3f}  ({hit[kind]}/{seeded[kind]})")
    all_hit, all_seeded = sum(hit.values()), sum(seeded.values())
    print(f"  recall overall  {all_hit / all_seeded:.3f}  ({all_hit}/{all_seeded})")
    print(f"  precision       {right / max(total, 1):.3f}  ({right}/{total} findings)")
    clean = sum(not reply.spans for reply in replies)
    print(f"  clean replies with a finding: {clean_flagged}/{clean}")
    print(f"  time per reply  {elapsed / len(replies) * 1e6:.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=3, help="3 = the reported set; 1 = tuning")
    parser.add_argument("--replies", type=int, default=2000, help="half personal, half clean")
    parser.add_argument("--show-misses", action="store_true", help="print what was missed")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    replies = [generate(rng, personal=i % 2 == 0) for i in range(args.replies)]
    print(f"seed {args.seed}, {args.replies} replies")
    measure(replies)
    if args.show_misses:
        for reply in replies:
            findings = find_personal_data(reply.text)
            for kind, start, end in reply.spans:
                if not any(f.kind == kind and f.start < end and start < f.end for f in findings):
                    print(f"MISSED {kind}: {reply.text[start:end]!r} in {reply.text!r}")
            for f in findings:
                if not any(k == f.kind and f.start < e and s < f.end for k, s, e in reply.spans):
                    print(f"WRONG {f.kind}: {f.text!r} in {reply.text!r}")


if __name__ == "__main__":
    main()
