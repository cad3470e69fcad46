"""docs/configuration.md documents every settings key (the reference must not drift)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from appliance.settings import Settings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        inner = getattr(ann, "__args__", (ann,))
        sub = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        out.append(prefix + name)
        if sub is not None:
            out += _keys(sub, prefix + name + ".")
    return out


def test_every_key_is_documented() -> None:
    missing = [k for k in _keys(Settings) if f"{k.rsplit('.', 1)[-1]}:" not in DOC]
    assert not missing, f"document these settings in docs/configuration.md: {missing}"
