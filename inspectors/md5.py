"""``md5``: known files by exact hash (MD5 or SHA-256), on every object and every child.

Children (a file inside a ZIP, an image inside a DOCX) arrive as content objects of their own,
so the inspector looks at whatever it is given. It uses the digests the assembler computed while
the object streamed (``obj.md5``/``obj.sha256``) and computes them itself only when they are
missing (extracted children), from ``obj.data`` or the spool file. A truncated object's digest is
that of the bytes received: it cannot match the whole file, so such objects are skipped (and
flagged ``md5_incomplete``) unless ``params.partial`` is true.

Lists: ``fingerprints`` lists with ``algorithm: md5`` or ``sha256`` (``options.path``: a library
file, a hash list or a CSV; ``options.hashes``: inline). One finding per (list, matched entry):
``rule`` = list name, ``score`` = the list's weight, ``detail`` = algorithm, hash, label,
category, source and library id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from appliance.model.alerts import Evidence, Finding
from appliance.model.content import ContentObject
from appliance.model.inspection import InspectorConfig, ListSpec
from fingerprints import hashing as hx
from fingerprints.sets import ExactFingerprints, load_exact
from inspectors.base import InspectContext, InspectorConfigError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _List:
    spec: ListSpec
    algorithm: str
    fps: ExactFingerprints


class Md5Inspector:
    """Exact-hash matching; see the module docstring. Params: ``partial`` (False)."""

    name = "md5"
    kinds = frozenset({"any"})
    cost: Literal["cheap", "expensive"] = "cheap"
    cache_context = ("filename",)  # named in the finding

    def __init__(self) -> None:
        self.lists: list[_List] = []
        self.partial = False

    def configure(self, config: InspectorConfig) -> None:
        lists: list[_List] = []
        for spec in config.lists:
            where = f"list {spec.name!r}"
            if spec.kind != "fingerprints":
                raise InspectorConfigError(f"{where} has kind {spec.kind!r}; the md5 inspector takes "
                                           "'fingerprints' lists")
            opts = dict(spec.options)
            algo = str(opts.get("algorithm", "md5"))
            if algo not in hx.EXACT:
                raise InspectorConfigError(f"{where}: algorithm {algo!r} is not md5 or sha256 "
                                           "(perceptual lists belong to the perceptual inspector)")
            try:
                fps = load_exact(algo, str(opts.get("path") or ""), tuple(opts.get("hashes") or ()))
            except OSError as exc:
                raise InspectorConfigError(f"{where}: cannot read {opts.get('path')}: {exc.strerror or exc}") from None
            except Exception as exc:
                raise InspectorConfigError(f"{where}: {exc}") from None
            log.info("md5 inspector: list %s: %d %s fingerprints", spec.name, len(fps), algo)
            lists.append(_List(spec, algo, fps))
        self.lists = lists
        self.partial = bool(config.params.get("partial", False))

    def _digests(self, obj: ContentObject, ctx: InspectContext) -> dict[str, str]:
        got = {"md5": obj.md5.lower(), "sha256": obj.sha256.lower()}
        want = {lst.algorithm for lst in self.lists}
        if all(got[a] for a in want):
            return got
        key = (obj.id, "digests")
        cached = ctx.cache.get(key)
        if cached is None:
            src: bytes | str | None = obj.data if obj.data is not None else obj.spool_path
            if src is None:
                cached = {}
            else:
                md5, sha = hx.file_digests(src)
                cached = {"md5": md5, "sha256": sha}
            ctx.cache[key] = cached
        return {a: got[a] or cached.get(a, "") for a in got}

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        if not self.lists:
            return
        if not obj.complete and not self.partial:
            ctx.flag(obj, "md5_incomplete")
            return
        digests = self._digests(obj, ctx)
        for lst in self.lists:
            digest = digests.get(lst.algorithm, "")
            if not digest:
                continue
            hit = lst.fps.lookup(digest)
            if hit is None:
                continue
            ctx.counters["md5.matches"] += 1
            what = hit.label or obj.filename or digest
            snippet = f"{lst.algorithm} {digest} = {what}" + (f" [{hit.category}]" if hit.category else "")
            detail = {"list": lst.spec.name, "algorithm": lst.algorithm, "hash": digest, "label": hit.label,
                      "category": hit.category, "source": hit.source, "count": "1"}
            if hit.entry_id:
                detail["fingerprint_id"] = str(hit.entry_id)
            if obj.filename:
                detail["filename"] = obj.filename
            yield Finding(self.name, obj.id, lst.spec.name, float(lst.spec.weight),
                          (Evidence(0, obj.size, snippet[:200], f"{lst.algorithm}:{digest}"),), detail)
