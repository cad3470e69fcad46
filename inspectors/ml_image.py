"""``ml_image``: pornographic-image detection with NudeNet's ONNX detector.

NudeNet (a runtime dependency: it ships its ONNX model in the wheel and runs it with
onnxruntime; about 0.1 s of CPU per image, whatever its size, as the model reads 320×320) finds
body parts with a class and a score. The image's score is the highest score
among the *exposed* classes in ``params.classes`` (default: the genitalia, breast, buttocks and
anus "EXPOSED" classes); at or over ``threshold`` (0.6) the inspector reports one finding
(``rule`` = ``pornographic``, ``score`` = that probability, ``detail`` = the classes seen).

Should ``nudenet`` still be missing (a stripped install), ``configure`` says so in the log
(warning) and in ``unavailable`` and the inspector yields nothing, counting the images it skipped
(``ml_image.unavailable``). With ``params.required: true`` a missing NudeNet is a configuration
error instead. The inspector's cost class is ``expensive`` (it runs in the inspection pool).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Literal

from appliance.model.alerts import Evidence, Finding
from appliance.model.content import ContentObject
from appliance.model.inspection import InspectorConfig
from fingerprints import hashing as hx
from inspectors.base import InspectContext, InspectorConfigError
from inspectors.perceptual import image_bytes, is_image

log = logging.getLogger(__name__)

EXPOSED = ("FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED",
           "ANUS_EXPOSED")


def load_detector() -> Any:
    """NudeNet's detector (ImportError when the extra is not installed)."""
    from nudenet import NudeDetector

    return NudeDetector()


class MlImageInspector:
    """See the module docstring. Params: ``threshold`` (0.6), ``classes``, ``max_pixels`` (50 M),
    ``max_bytes`` (32 MiB), ``required`` (False)."""

    name = "ml_image"
    kinds = frozenset({"image"})
    cost: Literal["cheap", "expensive"] = "expensive"
    cache_context: tuple[str, ...] = ()  # reads the content alone: a repeat's result is reused

    def __init__(self) -> None:
        self.detector: Any = None
        self.unavailable = ""
        self.threshold = 0.6
        self.classes: frozenset[str] = frozenset(EXPOSED)
        self.max_pixels = hx.DEFAULT_MAX_PIXELS
        self.max_bytes = 32 << 20

    def configure(self, config: InspectorConfig) -> None:
        p = dict(config.params)
        try:
            self.threshold = float(p.get("threshold", 0.6))
            self.max_pixels = int(p.get("max_pixels", hx.DEFAULT_MAX_PIXELS))
            self.max_bytes = int(p.get("max_bytes", 32 << 20))
        except (TypeError, ValueError) as exc:
            raise InspectorConfigError(f"ml_image params: {exc}") from None
        if p.get("classes"):
            self.classes = frozenset(str(c) for c in p["classes"])
        self.detector = None
        self.unavailable = ""
        try:
            self.detector = load_detector()
        except ImportError as exc:
            self.unavailable = (f"NudeNet is not installed ({exc}); reinstall tapsift (it depends on "
                                "nudenet) to classify images")
        except Exception as exc:  # a broken model file or onnxruntime
            self.unavailable = f"NudeNet failed to load: {exc!r}"
        if self.unavailable:
            if p.get("required"):
                raise InspectorConfigError(f"ml_image: {self.unavailable}")
            log.warning("ml_image: %s; images will NOT be classified", self.unavailable)

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        if not is_image(obj):
            return
        if self.detector is None:
            ctx.counters["ml_image.unavailable"] += 1
            return
        data = image_bytes(obj, self.max_bytes)
        if data is None:
            return
        try:
            img = hx.open_image(data, max_pixels=self.max_pixels)
        except hx.ImageError:
            ctx.flag(obj, "image_undecodable")
            return
        import numpy as np

        bgr = np.ascontiguousarray(np.asarray(img)[:, :, ::-1])  # NudeNet reads OpenCV (BGR) arrays
        detections = self.detector.detect(bgr) or []
        ctx.counters["ml_image.classified"] += 1
        hits = [d for d in detections if d.get("class") in self.classes]
        if not hits:
            return
        best = max(float(d.get("score", 0.0)) for d in hits)
        if best < self.threshold:
            return
        seen = sorted({f"{d['class']}:{float(d.get('score', 0)):.2f}" for d in hits})
        detail = {"label": "pornographic", "probability": f"{best:.3f}", "threshold": f"{self.threshold:g}",
                  "classes": ", ".join(seen[:10]), "count": "1", "size": f"{img.width}x{img.height}"}
        yield Finding(self.name, obj.id, "pornographic", round(best, 4),
                      (Evidence(0, obj.size, f"NudeNet: {', '.join(seen[:5])}", "image"),), detail)
