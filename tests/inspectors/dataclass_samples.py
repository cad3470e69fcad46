"""Generated data-class instances in the formats people type, and decoys that must not match.

Check digits are computed here, independently of the code under test."""

from __future__ import annotations

import random

_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
REGIONS = ("110101", "110105", "310101", "440305", "510104", "650102", "620102", "330106", "210102")
SEPARATORS = ("", " ", "-", ".", "+", " - ", "  ", "/", "_")
FULLWIDTH = str.maketrans({**{str(i): chr(0xFF10 + i) for i in range(10)}, " ": "\u3000", "-": "\uff0d",
                           ".": "\uff0e", "+": "\uff0b", "/": "\uff0f", "_": "\uff3f", "X": "\uff38"})
ID_GROUPS = ((6, 8, 4), (6, 4, 2, 2, 4), (3, 3, 8, 4), (18,), (6, 12), (6, 8, 3, 1))
CARD_SCHEMES = {  # scheme: (prefixes, lengths, groupings)
    "unionpay": (("62", "6212", "6228", "6259"), (16, 17, 18, 19), None),
    "visa": (("4",), (16, 19), None),
    "mastercard": (("51", "53", "55", "2221", "2500", "2720"), (16,), None),
    "amex": (("34", "37"), (15,), (4, 6, 5)),
    "jcb": (("3528", "3550", "3589"), (16,), None),
    "discover": (("6011", "644", "65"), (16,), None),
    "diners": (("36", "300", "305"), (14,), (4, 6, 4)),
}
CONTEXTS = (("", ""), ("身份证号：", "。"), ("ID: ", " ok"), ("\n", "\n"), ("卡号 ", "，谢谢"), ("(", ")"),
            ("号码为", ""), ("<td>", "</td>"), ("\"", "\","))


def prc_id(rng: random.Random) -> str:
    body = rng.choice(REGIONS) + f"{rng.randint(1930, 2020)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}" + \
        f"{rng.randint(0, 999):03d}"
    check = (12 - sum(int(c) * w for c, w in zip(body, _W)) % 11) % 11
    return body + ("X" if check == 10 else str(check))


def luhn_complete(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body + "0")):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def card(rng: random.Random, scheme: str) -> str:
    prefixes, lengths, _ = CARD_SCHEMES[scheme]
    p = rng.choice(prefixes)
    n = rng.choice(lengths)
    return luhn_complete(p + "".join(str(rng.randint(0, 9)) for _ in range(n - len(p) - 1)))


MOBILE_PREFIXES = (*range(130, 140), *range(145, 150), 150, 151, 152, 153, *range(155, 160), 162, 165, 166, 167,
                   *range(170, 179), *range(180, 190), 190, 191, 192, 193, *range(195, 200))
"""Number segments MIIT has allocated to mobile operators."""


def mobile(rng: random.Random) -> str:
    return str(rng.choice(MOBILE_PREFIXES)) + "".join(str(rng.randint(0, 9)) for _ in range(8))


def group(s: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for k in sizes:
        out.append(s[i:i + k])
        i += k
    if i < len(s):
        out.append(s[i:])
    return sep.join(x for x in out if x)


def card_groups(d: str, scheme: str) -> tuple[int, ...]:
    g = CARD_SCHEMES[scheme][2]
    return g if g else (4,) * (len(d) // 4)


def styled(value: str, sizes: tuple[int, ...], sep: str, fullwidth: bool) -> str:
    s = group(value, sizes, sep)
    return s.translate(FULLWIDTH) if fullwidth else s


def formatted_mobile(rng: random.Random, m: str) -> str:
    sep = rng.choice(("", " ", "-", "."))
    prefix = rng.choice(("", "+86 ", "+86-", "0086 ", "(+86) ", "+86"))
    return prefix + group(m, (3, 4, 4), sep)


def waybill(rng: random.Random) -> str:
    """Courier tracking numbers: letters then digits (some are Luhn-valid card look-alikes)."""
    kind = rng.choice(("SF", "YT", "JD", "JT", "ZTO", "EA"))
    digits = card(rng, rng.choice(list(CARD_SCHEMES)))[: rng.choice((12, 13, 15))]
    if kind == "EA":
        return f"EA{digits[:9]}CN"
    return kind + luhn_complete(digits[:-1]) if rng.random() < 0.5 else kind + digits


def embedded(rng: random.Random, value: str) -> str:
    """``value`` inside a longer run of digits (an order number, a timestamp, a serial)."""
    left = "".join(str(rng.randint(0, 9)) for _ in range(rng.randint(1, 4)))
    right = "".join(str(rng.randint(0, 9)) for _ in range(rng.randint(0, 3)))
    return left + value + right
