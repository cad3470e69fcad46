"""``perceptual``: look-alike images by perceptual hash (pHash/dHash, optional PDQ).

Every image object is decoded once (``fingerprints.hashing.open_image``: JPEG draft mode, pixel
cap checked before decoding) and hashed; images inside documents and video keyframes arrive as
child objects and are handled the same way. Each ``fingerprints`` list with ``algorithm`` phash,
dhash or pdq is searched in its Hamming index with its own threshold:

* ``max_distance`` (the list's; ``0`` = the measured default: pHash 8, dHash 10, PDQ 31);
* **dual-hash confirmation** near the threshold: a candidate up to ``margin`` bits beyond it
  (default 6, so pHash 9–14) matches only if the entry's other hash (dHash for a pHash list,
  pHash for a dHash list) is within ``confirm`` bits (default: dHash 10, pHash 8). Entries
  without the other hash (plain hash lists) match only within the threshold.
* PDQ lists need the optional ``pdqhash`` package (said at configure time) and skip images
  whose PDQ quality is below ``min_pdq_quality`` (50).

List options (``lists.<name>.options``) may override ``margin`` and ``confirm``; inspector params
give the defaults plus ``max_pixels`` (50 M), ``max_bytes`` (64 MiB read from a spool file) and
``max_matches`` (5 findings per list). A finding names the entry (label, category, source), the
image's hash and both distances.
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
from fingerprints.sets import DEFAULT_CONFIRM, DEFAULT_THRESHOLDS, SECONDARY, PerceptualFingerprints, load_perceptual
from inspectors.base import InspectContext, InspectorConfigError

log = logging.getLogger(__name__)

IMAGE_MIMES = ("image/",)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ico")


def is_image(obj: ContentObject) -> bool:
    """Whether the object is an image by sniffed or declared MIME type (or, lacking both, by name)."""
    for m in (obj.sniffed_mime, obj.declared_mime):
        if m:
            return m.lower().startswith(IMAGE_MIMES) and "svg" not in m.lower()
    return obj.filename.lower().endswith(IMAGE_EXTENSIONS)


def image_bytes(obj: ContentObject, max_bytes: int) -> bytes | None:
    """The object's bytes from memory or its spool file (None if too large or missing)."""
    if obj.data is not None:
        return obj.data if len(obj.data) <= max_bytes else None
    if obj.spool_path:
        try:
            with open(obj.spool_path, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError:
            return None
        return data if len(data) <= max_bytes else None
    return None


def object_hashes(obj: ContentObject, ctx: InspectContext, *, max_pixels: int, max_bytes: int,
                  with_pdq: bool = False) -> hx.ImageHashes | None:
    """The image's hashes, computed once per object and cached in ``ctx`` (None: not decodable)."""
    key = (obj.id, "imagehashes:pdq" if with_pdq else "imagehashes")
    if key in ctx.cache:
        return ctx.cache[key]
    got: hx.ImageHashes | None = None
    data = image_bytes(obj, max_bytes)
    if data is None:
        ctx.flag(obj, "image_too_large" if (obj.data is not None or obj.spool_path) else "image_no_data")
    else:
        try:
            got = hx.image_hashes(data, max_pixels=max_pixels, with_pdq=with_pdq)
        except hx.ImageError as exc:
            ctx.flag(obj, "image_over_pixel_cap" if "over the cap" in str(exc) else "image_undecodable")
    ctx.cache[key] = got
    return got


@dataclass(slots=True)
class _List:
    spec: ListSpec
    algorithm: str
    fps: PerceptualFingerprints
    threshold: int
    margin: int
    confirm: int


class PerceptualInspector:
    """Perceptual image matching; see the module docstring."""

    name = "perceptual"
    kinds = frozenset({"image"})
    cost: Literal["cheap", "expensive"] = "cheap"
    cache_context = ("filename",)  # the extension decides whether an object is an image to look at

    def __init__(self) -> None:
        self.lists: list[_List] = []
        self.max_pixels = hx.DEFAULT_MAX_PIXELS
        self.max_bytes = 64 << 20
        self.max_matches = 5
        self.min_pdq_quality = 50
        self.with_pdq = False

    def configure(self, config: InspectorConfig) -> None:
        p = dict(config.params)
        try:
            self.max_pixels = int(p.get("max_pixels", hx.DEFAULT_MAX_PIXELS))
            self.max_bytes = int(p.get("max_bytes", 64 << 20))
            self.max_matches = int(p.get("max_matches", 5))
            self.min_pdq_quality = int(p.get("min_pdq_quality", 50))
            default_margin = int(p.get("margin", 6))
        except (TypeError, ValueError) as exc:
            raise InspectorConfigError(f"perceptual inspector params: {exc}") from None
        lists: list[_List] = []
        for spec in config.lists:
            where = f"list {spec.name!r}"
            if spec.kind != "fingerprints":
                raise InspectorConfigError(f"{where} has kind {spec.kind!r}; the perceptual inspector takes "
                                           "'fingerprints' lists")
            opts = dict(spec.options)
            algo = str(opts.get("algorithm", ""))
            if algo not in hx.PERCEPTUAL:
                raise InspectorConfigError(f"{where}: algorithm {algo!r} is not phash, dhash or pdq "
                                           "(exact hashes belong to the md5 inspector)")
            if algo == "pdq" and not hx.pdq_available():
                raise InspectorConfigError(f"{where}: PDQ needs the optional 'pdqhash' package, which is not "
                                           "installed (pip install pdqhash numpy)")
            try:
                threshold = int(opts.get("max_distance") or DEFAULT_THRESHOLDS[algo])
                margin = int(opts.get("margin", default_margin if algo in SECONDARY else 0))
                confirm = int(opts.get("confirm", p.get("confirm", DEFAULT_CONFIRM.get(algo, 0))))
            except (TypeError, ValueError) as exc:
                raise InspectorConfigError(f"{where}: {exc}") from None
            if threshold > hx.BITS[algo] // 2:
                raise InspectorConfigError(f"{where}: max_distance {threshold} is over half the hash "
                                           f"({hx.BITS[algo]} bits): it would match unrelated images")
            try:
                fps = load_perceptual(algo, str(opts.get("path") or ""), tuple(opts.get("hashes") or ()))
            except OSError as exc:
                raise InspectorConfigError(f"{where}: cannot read {opts.get('path')}: {exc.strerror or exc}") from None
            except Exception as exc:
                raise InspectorConfigError(f"{where}: {exc}") from None
            log.info("perceptual inspector: list %s: %d %s hashes, threshold %d (+%d confirmed)",
                     spec.name, len(fps), algo, threshold, margin)
            lists.append(_List(spec, algo, fps, threshold, margin, confirm))
        self.lists = lists
        self.with_pdq = any(lst.algorithm == "pdq" for lst in lists)

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        if not self.lists or not is_image(obj):
            return
        ih = object_hashes(obj, ctx, max_pixels=self.max_pixels, max_bytes=self.max_bytes, with_pdq=self.with_pdq)
        if ih is None:
            return
        ctx.counters["perceptual.images"] += 1
        for lst in self.lists:
            algo = lst.algorithm
            query = ih.get(algo)
            if query is None or (algo == "pdq" and ih.pdq_quality < self.min_pdq_quality):
                continue
            sec = SECONDARY.get(algo)
            secondary = ih.get(sec) if sec else None
            matches = lst.fps.match(query, secondary, lst.threshold, lst.margin, lst.confirm)
            for pos, dist, sdist in matches[: self.max_matches]:
                hit = lst.fps.hit(pos, dist, sdist)
                ctx.counters["perceptual.matches"] += 1
                how = (f"{algo} distance {dist} ≤ {lst.threshold}" if sdist is None else
                       f"{algo} distance {dist} (≤ {lst.threshold + lst.margin}), confirmed by {sec} "
                       f"distance {sdist} ≤ {lst.confirm}")
                what = hit.label or hit.hash
                detail = {
                    "list": lst.spec.name, "algorithm": algo, "hash": hx.to_hex(query, algo),
                    "matched": hit.hash, "distance": str(dist), "threshold": str(lst.threshold),
                    "label": hit.label, "category": hit.category, "source": hit.source, "count": "1",
                    "size": f"{ih.width}x{ih.height}",
                }
                if sdist is not None:
                    detail["confirm_algorithm"] = sec or ""
                    detail["confirm_distance"] = str(sdist)
                if hit.entry_id:
                    detail["fingerprint_id"] = str(hit.entry_id)
                ev = Evidence(0, obj.size, f"looks like {what}: {how}"[:200], f"{algo}:{hx.to_hex(query, algo)}")
                yield Finding(self.name, obj.id, lst.spec.name, float(lst.spec.weight), (ev,), detail)
