"""Data-class validators (with generated valid numbers) and the inspector."""

from __future__ import annotations

import random

import pytest

from appliance.model.inspection import InspectorConfig, ListSpec
from inspectors.base import InspectContext, InspectorConfigError, guarded
from inspectors.dataclass import (
    DataClassInspector,
    cn_mobile_valid,
    email_valid,
    ipv4_valid,
    luhn_valid,
    mask,
    prc_id_valid,
)
from tests.inspectors.factories import make_obj

_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_prc_id(rng: random.Random) -> str:
    """A valid ID, with the check digit computed here (not by the code under test)."""
    region = rng.choice(["110105", "310101", "440305", "510104", "650102"])
    born = f"{rng.randint(1930, 2015)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = region + born + f"{rng.randint(0, 999):03d}"
    check = (12 - sum(int(c) * w for c, w in zip(body, _W)) % 11) % 11
    return body + ("X" if check == 10 else str(check))


def make_card(rng: random.Random, prefix: str = "62", length: int = 16) -> str:
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, c in enumerate(reversed(body + "0")):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def test_prc_id() -> None:
    rng = random.Random(5)
    ids = [make_prc_id(rng) for _ in range(300)]
    assert all(prc_id_valid(x) for x in ids)
    assert any(x.endswith("X") for x in ids)
    assert prc_id_valid(ids[0].lower())
    good = "11010519491231002X"
    assert prc_id_valid(good)
    assert not prc_id_valid("110105194912310021")          # wrong check digit
    assert not prc_id_valid("110105194902300025")          # 30 February
    assert not prc_id_valid("990105194912310021")          # no such province
    assert not prc_id_valid("1101051949123100")            # too short
    for x in ids[:50]:                                      # any single-digit change breaks it
        i = rng.randint(0, 16)
        y = x[:i] + str((int(x[i]) + 1) % 10) + x[i + 1:]
        assert not prc_id_valid(y)


def test_luhn_and_iin() -> None:
    rng = random.Random(6)
    for prefix, length in (("62", 16), ("62", 19), ("4", 16), ("51", 16), ("37", 15), ("6011", 16)):
        for _ in range(30):
            card = make_card(rng, prefix, length)
            assert luhn_valid(card, iin=True), card
            assert luhn_valid(" ".join(card[i:i + 4] for i in range(0, len(card), 4)))
            bad = card[:-1] + str((int(card[-1]) + 1) % 10)
            assert not luhn_valid(bad)
    assert luhn_valid("79927398713") is False  # classic Luhn example, but only 11 digits
    assert not luhn_valid("0000000000000000")
    assert luhn_valid(make_card(rng, "99", 16)) and not luhn_valid(make_card(rng, "99", 16), iin=True)


def test_cn_mobile() -> None:
    for good in ("13812345678", "+86 138-1234-5678", "008613812345678", "8613812345678", "199 1234 5678"):
        assert cn_mobile_valid(good), good
    for bad in ("12812345678", "1381234567", "23812345678", "14012345678", "+1 13812345678"):
        assert not cn_mobile_valid(bad), bad


def test_email_and_ipv4() -> None:
    assert email_valid("john.doe+tag@mail.example.co")
    for bad in ("a@b", "a..b@example.com", ".a@example.com", "a@-example.com", "a@example.c0m",
                "x" * 65 + "@example.com", "a@exa_mple.com"):
        assert not email_valid(bad), bad
    assert ipv4_valid("192.168.1.254") and ipv4_valid("0.0.0.0")
    for bad in ("256.1.1.1", "1.2.3", "01.2.3.4", "1.2.3.4.5", "a.b.c.d"):
        assert not ipv4_valid(bad), bad


def test_mask_hides_the_middle() -> None:
    assert mask("11010519491231002X") == "1101**********002X"
    assert mask("6222 0212 3456 7894") == "6222 **** **** 7894"
    assert mask("john.doe@example.com") == "j*******@example.com"


def _inspector(*lists: ListSpec) -> DataClassInspector:
    ins = DataClassInspector()
    ins.configure(InspectorConfig("dataclass", lists=lists))
    return ins


def test_inspector_counts_valid_matches_and_masks_evidence() -> None:
    rng = random.Random(7)
    ids = [make_prc_id(rng) for _ in range(3)]
    card = make_card(rng)
    fw = "".join(chr(ord(c) + 0xFEE0) for c in ids[2])  # full-width digits
    text = (f"名单 {ids[0]}，{ids[1]} 以及 {fw}; bogus 110105194912310021; card {card}; "
            f"tel +86 138 1234 5678, mail: Zhang.San@Example.cn, host 10.0.0.1 and 300.1.1.1")
    ins = _inspector(ListSpec("ids", "dataclass", validator="prc_id", weight=10),
                     ListSpec("cards", "dataclass", validator="luhn"),
                     ListSpec("phones", "dataclass", validator="cn_mobile"),
                     ListSpec("mail", "dataclass", validator="email"),
                     ListSpec("ip", "dataclass", validator="ipv4"))
    obj = make_obj(text=text)
    got = {f.rule: f for f in guarded(ins, obj, InspectContext())}
    assert got["ids"].score == 30 and got["ids"].detail["invalid"] == "1"
    assert [text[e.start:e.end] for e in got["ids"].evidence] == [ids[0], ids[1], fw]
    for f in got.values():
        for ev in f.evidence:
            value = text[ev.start:ev.end]
            assert value not in ev.snippet or len(value) < 8
    assert got["cards"].detail["count"] == "1"
    assert got["phones"].detail["count"] == "1"
    assert got["mail"].evidence[0].snippet.count("@Example.cn") == 1
    assert got["ip"].detail == {"list": "ip", "validator": "ipv4", "count": "1", "invalid": "1"}


def test_custom_pattern_with_and_without_validator() -> None:
    ins = _inspector(ListSpec("proj", "dataclass", pattern=r"proj-\d{4}", weight=2),
                     ListSpec("ids2", "dataclass", pattern=r"id:\d{17}[\dx]", validator="prc_id"))
    res = ins.scan("PROJ-1234 proj-5678 id:110105194912310021 id:11010519491231002X")
    got = {f.rule: f for f in res}
    assert got["proj"].score == 4
    assert "ids2" not in got  # the pattern includes "id:", so prc_id rejects it


def test_bad_dataclass_specs() -> None:
    for spec in (ListSpec("l", "dataclass", validator="iban"), ListSpec("l", "dataclass"),
                 ListSpec("l", "dataclass", pattern="(?<=x)y"), ListSpec("l", "keywords")):
        with pytest.raises(InspectorConfigError, match="'l'"):
            _inspector(spec)


def test_digit_runs_are_bounded() -> None:
    ins = _inspector(ListSpec("cards", "dataclass", validator="luhn"),
                     ListSpec("ids", "dataclass", validator="prc_id"))
    assert ins.scan("1" * 100_000) == []


def test_custom_pattern_supports_word_boundaries() -> None:
    ins = _inspector(ListSpec("m", "dataclass", pattern=r"\b1[3-9]\d{9}\b", validator="cn_mobile"))
    (f,) = ins.scan("call 13812345678 or 813812345678")
    assert f.detail["count"] == "1"
