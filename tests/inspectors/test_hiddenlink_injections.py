"""Generated injections (every position × every script encoding, nested combinations) are found
by the hidden-link inspector through the HTML extractor; legitimate pages with real-world
scripts, menus, cookie banners, skip links, frames and comments give no finding."""

from __future__ import annotations

import itertools
import random

import pytest

from appliance.model.inspection import InspectorConfig
from bench.darkword_bench import ENCODINGS, POSITIONS, injected_page, legit_variant, make_sites, page_object
from inspectors.base import InspectContext, guarded
from inspectors.darkword import DEFAULT_LEXICON
from inspectors.hiddenlink import HiddenLinkInspector

SITES = make_sites(8, 11)


@pytest.fixture(scope="module")
def hl() -> HiddenLinkInspector:
    ins = HiddenLinkInspector()
    ins.configure(InspectorConfig("hiddenlink", DEFAULT_LEXICON))
    return ins


COMBOS = [(p, None) for p in POSITIONS] + list(itertools.product(POSITIONS, ENCODINGS))


@pytest.mark.parametrize(("position", "encoding"), COMBOS, ids=[f"{p}-{e}" for p, e in COMBOS])
def test_every_injection_form_is_detected(hl, position, encoding):
    rng = random.Random(f"{position}/{encoding}")
    for i in range(2):
        host, topic = SITES[(POSITIONS.index(position) + i) % len(SITES)]
        html = injected_page(host, topic, rng, position, encoding)
        found = guarded(hl, page_object(html, host, f"F{i}"), InspectContext())
        assert found, html[-800:]
        assert all(f.detail["reason"] for f in found)


def test_legitimate_pages_give_no_finding(hl):
    rng = random.Random(7)
    for i in range(150):
        host, topic = SITES[i % len(SITES)]
        html = legit_variant(host, topic, rng)
        assert guarded(hl, page_object(html, host, f"L{i}"), InspectContext()) == [], html
