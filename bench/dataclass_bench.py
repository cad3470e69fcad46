#!/usr/bin/env python3
"""Data classes: per-instance recall on generated IDs, cards and phones in every typed format, and
false positives on decoys (courier waybills, order numbers, timestamps, digits inside longer runs).

    .venv/bin/python bench/dataclass_bench.py [--n 2000] [--seed 1]

Instances come from ``tests/inspectors/dataclass_samples.py`` (check digits computed there, not
by the code under test): every separator style (none, space, ``-``, ``.``, ``+``, ``/``, ``_``,
`` - ``, double space), groupings (IDs 6-8-4, 6-4-2-2-4, 3-3-8-4, 6-12, 6-8-3-1; cards by scheme),
half of them full-width, inside nine text contexts (Chinese and English labels, HTML cells,
quotes). One document per instance; recall counts instances found exactly once.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.model.inspection import InspectorConfig, ListSpec  # noqa: E402
from inspectors.dataclass import DataClassInspector, cn_mobile_valid, luhn_valid  # noqa: E402
from tests.inspectors import dataclass_samples as S  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="instances per class")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    ins = DataClassInspector()
    ins.configure(InspectorConfig("dataclass", (ListSpec("id", "dataclass", validator="身份证"),
                                                ListSpec("card", "dataclass", validator="bank_card"),
                                                ListSpec("mobile", "dataclass", validator="手机号"))))

    def found(text: str) -> dict[str, int]:
        return {f.rule: int(f.detail["count"]) for f in ins.scan(text)}

    docs: dict[str, list[str]] = {"id": [], "card": [], "mobile": []}
    for _ in range(a.n):
        ctx = rng.choice(S.CONTEXTS)
        fw = rng.random() < 0.5
        docs["id"].append(ctx[0] + S.styled(S.prc_id(rng), rng.choice(S.ID_GROUPS), rng.choice(S.SEPARATORS), fw)
                          + ctx[1])
        scheme = rng.choice(list(S.CARD_SCHEMES))
        d = S.card(rng, scheme)
        docs["card"].append(ctx[0] + S.styled(d, S.card_groups(d, scheme), rng.choice(("", " ", "-", ".", "  ")), fw)
                            + ctx[1])
        m = S.formatted_mobile(rng, S.mobile(rng))
        docs["mobile"].append(ctx[0] + (m.translate(S.FULLWIDTH) if fw else m) + ctx[1])
    print("| class | instances found exactly once | other classes raised |\n|---|---|---|")
    t0 = time.perf_counter()
    n_docs = 0
    for cls, texts in docs.items():
        ok = other = 0
        for t in texts:
            got = found(t)
            ok += got.get(cls) == 1
            other += any(k != cls for k in got)
            n_docs += 1
        print(f"| {cls} | {ok}/{len(texts)} ({100 * ok / len(texts):.2f} %) | {other} |")
    decoys = []
    for _ in range(a.n):
        for d in (S.waybill(rng), S.embedded(rng, S.prc_id(rng)), S.embedded(rng, S.card(rng, "unionpay")),
                  S.embedded(rng, S.mobile(rng)), "订单号" + "".join(str(rng.randint(0, 9)) for _ in range(24)),
                  f"{rng.randint(1_600_000_000_000, 1_800_000_000_000)}", f"010-{rng.randint(10**7, 10**8 - 1)}",
                  "SN" + S.card(rng, "visa")):
            if d.isdigit() and (luhn_valid(d, iin=True) or cn_mobile_valid(d)):
                continue  # a run that is itself a well-formed card or phone is not a decoy
            decoys.append(f"编号 {d} 已发货")
    fp = sum(bool(found(d)) for d in decoys)
    dt = time.perf_counter() - t0
    print(f"\ndecoys (waybills, order numbers, ms timestamps, landlines, digits in longer runs): {fp}/{len(decoys)} "
          f"raised a finding\n{(n_docs + len(decoys)) / dt:.0f} documents/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
