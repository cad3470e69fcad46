"""Property tests: IDs, cards and phones in every separator style people type (full-width
included) are found once; decoys (waybills, order numbers, timestamps, digits inside longer
runs, phone-like numbers) are not; class-name aliases resolve in the inspector and the schema."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model.inspection import InspectorConfig, ListSpec
from inspectors.dataclass import (
    CLASS_ALIASES,
    DataClassInspector,
    card_scheme,
    cn_mobile_valid,
    luhn_valid,
    resolve_validator,
)
from tests.inspectors import dataclass_samples as S

SETTINGS = settings(derandomize=True, max_examples=250, deadline=None)


@pytest.fixture(scope="module")
def ins() -> DataClassInspector:
    i = DataClassInspector()
    i.configure(InspectorConfig("dataclass", (ListSpec("id", "dataclass", validator="prc_id"),
                                              ListSpec("card", "dataclass", validator="luhn"),
                                              ListSpec("mobile", "dataclass", validator="cn_mobile"))))
    return i


def counts(ins: DataClassInspector, text: str) -> dict[str, int]:
    return {f.rule: int(f.detail["count"]) for f in ins.scan(text)}


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), sizes=st.sampled_from(S.ID_GROUPS), sep=st.sampled_from(S.SEPARATORS),
       fullwidth=st.booleans(), ctx=st.sampled_from(S.CONTEXTS))
def test_ids_in_every_separator_style(ins, seed, sizes, sep, fullwidth, ctx):
    value = S.prc_id(random.Random(seed))
    text = ctx[0] + S.styled(value, sizes, sep, fullwidth) + ctx[1]
    assert counts(ins, text).get("id") == 1, text


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), scheme=st.sampled_from(list(S.CARD_SCHEMES)),
       sep=st.sampled_from(("", " ", "-", ".", "  ", " - ")), fullwidth=st.booleans(), ctx=st.sampled_from(S.CONTEXTS))
def test_cards_of_every_scheme_and_style(ins, seed, scheme, sep, fullwidth, ctx):
    d = S.card(random.Random(seed), scheme)
    assert card_scheme(d) == scheme
    text = ctx[0] + S.styled(d, S.card_groups(d, scheme), sep, fullwidth) + ctx[1]
    got = counts(ins, text)
    assert got.get("card") == 1 and "id" not in got, text


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), fullwidth=st.booleans(), ctx=st.sampled_from(S.CONTEXTS))
def test_mobiles_with_prefixes_and_separators(ins, seed, fullwidth, ctx):
    rng = random.Random(seed)
    text = S.formatted_mobile(rng, S.mobile(rng))
    text = ctx[0] + (text.translate(S.FULLWIDTH) if fullwidth else text) + ctx[1]
    assert counts(ins, text).get("mobile") == 1, text


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_invalid_instances_are_rejected(ins, seed):
    rng = random.Random(seed)
    v = S.prc_id(rng)
    i = rng.randint(0, 16)
    bad = v[:i] + str((int(v[i]) + rng.randint(1, 9)) % 10) + v[i + 1:]
    assert "id" not in counts(ins, S.group(bad, (6, 8, 4), " "))
    c = S.card(rng, rng.choice(list(S.CARD_SCHEMES)))
    bad_card = c[:-1] + str((int(c[-1]) + rng.randint(1, 9)) % 10)
    assert "card" not in counts(ins, S.group(bad_card, (4, 4, 4, 4, 3), " "))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_decoys_raise_nothing(ins, seed):
    rng = random.Random(seed)
    decoys = [
        S.waybill(rng),                                  # SF6976082563565 and friends
        S.embedded(rng, S.prc_id(rng)),                  # an ID's digits inside a longer run
        S.embedded(rng, S.card(rng, "unionpay")),
        S.embedded(rng, S.mobile(rng)),
        "订单号" + "".join(str(rng.randint(0, 9)) for _ in range(rng.randint(20, 30))),
        f"{rng.randint(2000, 2030)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}{rng.randint(0, 999):03d}",
        f"{rng.randint(1_600_000_000_000, 1_800_000_000_000)}",   # Unix time in ms
        f"010-{rng.randint(10_000_000, 99_999_999)}",    # a landline
        "A" + S.prc_id(rng),
        S.prc_id(rng) + "B",
        "SN" + S.card(rng, "visa"),
        S.mobile(rng)[:10],                              # one digit short
    ]
    for d in decoys:
        if d.isdigit() and (luhn_valid(d, iin=True) or cn_mobile_valid(d)):
            continue  # the digits happen to form a well-formed card/phone on their own: not a decoy
        got = counts(ins, f"编号 {d} 已发货")
        assert got == {}, (d, got)


def test_the_reported_waybill():
    ins = DataClassInspector()
    ins.configure(InspectorConfig("dataclass", (ListSpec("card", "dataclass", validator="luhn"),)))
    assert ins.scan("顺丰运单 SF6976082563565 已签收") == []
    assert card_scheme("6976082563565") == ""  # and the digits fit no published card scheme either


@pytest.mark.parametrize(("alias", "validator"), [("cn_id", "prc_id"), ("id_card", "prc_id"), ("身份证", "prc_id"),
                                                  ("Credit_Card", "luhn"), ("银行卡", "luhn"), ("phone", "cn_mobile"),
                                                  ("手机号", "cn_mobile"), ("邮箱", "email"), ("ip", "ipv4"),
                                                  ("bank_card", "luhn"), ("luhn", "luhn")])
def test_aliases_resolve_in_the_inspector(alias, validator):
    assert resolve_validator(alias) == validator
    ins = DataClassInspector()
    ins.configure(InspectorConfig("dataclass", (ListSpec("x", "dataclass", validator=alias),)))
    assert ins.classes[0].validate is not None


def test_aliases_resolve_in_the_policy_schema():
    from policies.schema import DATA_CLASS_ALIASES, load_policy

    assert dict(DATA_CLASS_ALIASES) == CLASS_ALIASES
    sample = Path(__file__).resolve().parents[2] / "policies" / "sample.yaml"
    src = sample.read_text(encoding="utf-8").replace(
        "lists:\n", "lists:\n  a1: {type: dataclass, class: 身份证}\n  a2: {type: dataclass, class: Credit_Card}\n"
        "  a3: {type: dataclass, class: custom, pattern: \"[0-9]{18}\", validator: cn_id}\n", 1)
    p = load_policy(src.encode())
    assert (p.lists["a1"].validator, p.lists["a2"].validator, p.lists["a3"].validator) == ("prc_id", "luhn", "prc_id")
