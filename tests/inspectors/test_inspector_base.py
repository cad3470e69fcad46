"""The guard, the context and the registry."""

from __future__ import annotations

from collections.abc import Iterator

from appliance.model.alerts import Finding
from inspectors import registry
from inspectors.base import InspectContext, Inspector, guarded
from tests.inspectors.factories import make_obj


class Boom:
    name = "boom"
    kinds = frozenset({"text"})
    cost = "cheap"

    def configure(self, config) -> None:
        pass

    def inspect(self, obj, ctx) -> Iterator[Finding]:
        yield Finding("boom", obj.id, "r")
        raise RuntimeError("kaput")


def test_guard_catches_logs_and_counts(caplog) -> None:
    ctx = InspectContext()
    obj = make_obj(text="x")
    got = guarded(Boom(), obj, ctx)
    assert [f.rule for f in got] == ["r"]  # findings before the failure are kept
    assert ctx.counters["inspector_errors.boom"] == 1
    guarded(Boom(), obj, ctx)
    assert ctx.counters["inspector_errors.boom"] == 2
    assert "kaput" in caplog.text


def test_context_text_is_lazy_cached_and_never_raises(monkeypatch) -> None:
    import inspectors.text as text_mod

    calls = []

    def fake(obj, max_bytes):
        calls.append(obj.id)
        if obj.id == "Fbad":
            raise ValueError("broken")
        return "hello"

    monkeypatch.setattr(text_mod, "extract_text", fake)
    ctx = InspectContext()
    obj = make_obj(b"hello")
    assert ctx.text(obj) == "hello" and ctx.text(obj) == "hello" and calls == ["Ftest1"]
    assert ctx.text(make_obj(b"x", oid="Fbad")) == "" and ctx.counters["text_errors"] == 1
    ctx.forget(obj)
    assert (obj.id, "text") not in ctx.cache


def test_registry_lists_builtins_and_creates() -> None:
    names = registry.available(plugins=False)
    assert {"keyword", "dataclass"} <= set(names)
    ins = registry.create("keyword", plugins=False)
    assert isinstance(ins, Inspector) and ins.cost == "cheap" and "text" in ins.kinds
    assert all(isinstance(cls(), Inspector) for cls in registry.BUILTINS)


def test_registry_loads_entry_points(monkeypatch) -> None:
    class EP:
        def __init__(self, name, target, fail=False):
            self.name, self.value, self._t, self._fail = name, "x:y", target, fail

        def load(self):
            if self._fail:
                raise ImportError("nope")
            return self._t

    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [EP("boom", Boom), EP("keyword", Boom), EP("broken", None, True)])
    got = registry.available()
    assert got["boom"] is Boom and got["keyword"] is not Boom and "broken" not in got
