"""`Sandbox.run_batch` and the batched extraction of sibling documents: the outcome of every
item is the one-at-a-time outcome; a crash or a timeout flags only the item that caused it."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from inspectors.extract import Budget, extract_tree
from inspectors.extract.parts import Limits
from inspectors.extract.sandbox import Sandbox, SandboxFailure
from tools import synth as S

T = "tests.inspectors.extract.sandbox_tasks:"


@pytest.fixture(scope="module")
def pool():
    sb = Sandbox(workers=2, memory_bytes=512 << 20, cpu_seconds=10)
    yield sb
    sb.close()


def _docs() -> list[bytes]:
    rng = random.Random(3)
    words = S.text(rng, 3000)
    docs = []
    for i in range(6):
        lines = [words[j * 80:(j + 1) * 80] for j in range(rng.randint(5, 30))]
        docs.append(S.pdf_document(f"Report {i}", lines, compress=i % 2 == 0))
        docs.append(S.docx_document(f"Memo {i}", lines[:8]))
    return docs


def test_batch_equals_one_at_a_time(pool: Sandbox) -> None:
    lim = Limits()
    for name in ("inspectors.extract.pdf:extract_pdf", "inspectors.extract.archives:extract_zip"):
        docs = [d for d in _docs() if d.startswith(b"%PDF") == name.endswith("pdf")]
        one = [pool.run(name, d, 30, limits=lim) for d in docs]
        batch = pool.run_batch(name, [(d, {"limits": lim}) for d in docs], 30)
        assert batch == one
        assert all(not isinstance(r, SandboxFailure) and r.text for r in batch)


def test_batch_uses_every_worker(pool: Sandbox) -> None:
    pids = pool.run_batch(T + "by_data", [(b"pid", {})] * 8, 10)
    assert len(set(pids)) == 2 and all(isinstance(p, int) for p in pids)


def test_a_crash_flags_only_its_item(pool: Sandbox) -> None:
    items = [(b"a", {}), (b"b", {}), (b"die", {}), (b"c", {}), (b"boom", {}), (b"d", {}), (b"e", {})]
    replaced = pool.replaced
    got = pool.run_batch(T + "by_data", items, 10)
    assert [g for g in got if not isinstance(g, SandboxFailure)] == [b"a", b"b", b"c", b"d", b"e"]
    assert got[2].reason.startswith("crashed") and got[4].reason == "error:ValueError"
    assert pool.replaced == replaced + 1
    assert pool.run(T + "echo", b"x", 10) == (b"x", {})  # the pool is whole again


def test_a_timeout_flags_only_its_item(pool: Sandbox) -> None:
    got = pool.run_batch(T + "by_data", [(b"a", {}), (b"spin", {}), (b"b", {}), (b"c", {})], 1.5,
                         cpu_seconds=60)
    assert got[0] == b"a" and got[2:] == [b"b", b"c"]
    assert isinstance(got[1], SandboxFailure) and got[1].reason == "timeout"


def test_closed_pool_fails_every_item() -> None:
    sb = Sandbox(workers=1)
    sb.close()
    got = sb.run_batch(T + "by_data", [(b"a", {}), (b"b", {})], 5)
    assert all(isinstance(g, SandboxFailure) and g.reason == "closed" for g in got)


class _Counting:
    """A sandbox that counts round trips and batches, running everything through a real pool."""

    def __init__(self, real: Sandbox) -> None:
        self.real = real
        self.runs = 0
        self.batches = 0

    def run(self, *a, **kw):
        self.runs += 1
        return self.real.run(*a, **kw)

    def run_batch(self, *a, **kw):
        self.batches += 1
        return self.real.run_batch(*a, **kw)


def _zip_of_documents(n: int = 6):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, d in enumerate(_docs()[:n]):
            zf.writestr(f"doc{i}.{'pdf' if d.startswith(b'%PDF') else 'docx'}", d)
    from tests.inspectors.factories import make_obj

    return make_obj(buf.getvalue(), mime="application/zip", sniffed_mime="application/zip", filename="bundle.zip")


def _view(tree):
    return [(o.filename, o.md5, ex.text, ex.truncated, ex.anomalies, [c.md5 for c in ex.children]) for o, ex in tree]


class _OneAtATime:
    """The pool without `run_batch`: extraction falls back to a round trip per object."""

    def __init__(self, real: Sandbox) -> None:
        self.real = real

    def run(self, *a, **kw):
        return self.real.run(*a, **kw)


@pytest.mark.parametrize("budget", [Budget(), replace(Budget(), max_children=4),
                                    replace(Budget(), max_expanded_bytes=60_000)],
                         ids=["roomy", "few-children", "few-bytes"])
def test_sibling_documents_in_batches_give_the_one_at_a_time_tree(pool: Sandbox, factory, budget) -> None:
    top = _zip_of_documents()
    counting = _Counting(pool)
    batched = extract_tree(top, budget, factory, sandbox=counting)
    one_by_one = extract_tree(top, budget, factory, sandbox=_OneAtATime(pool))
    assert counting.batches >= 1
    assert [v[1:] for v in _view(batched)] == [v[1:] for v in _view(one_by_one)]
    if budget == Budget():  # nothing binds: the ZIP is one round trip, its members one batch per type
        assert counting.runs == 1 and counting.batches == 2
