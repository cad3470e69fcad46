"""Generated media samples for the image/audio/video extractor tests and bench.

Images are rendered with Pillow and Debian fonts (DejaVu for English, WenQuanYi Micro Hei,
``fonts-wqy-microhei``, for Chinese), speech is synthesised with ``espeak-ng`` and encoded /
muxed with PyAV (the ``av`` wheel bundles FFmpeg). Everything is deterministic and made at
test time; nothing is downloaded. Helpers that need a missing tool raise `MissingTool`, which
the tests turn into a skip.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
EN_FONTS = ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSansMono.ttf",
            "dejavu/DejaVuSans-Bold.ttf")
ZH_FONT = "wqy/wqy-microhei.ttc"


class MissingTool(RuntimeError):
    """A font or program the sample needs is not installed."""


def font_path(rel: str) -> Path:
    for d in FONT_DIRS:
        p = d / rel
        if p.exists():
            return p
    raise MissingTool(f"font {rel} not installed (fonts-dejavu-core / fonts-wqy-microhei)")


# ---------------------------------------------------------------- images

EN_LINES = (
    "Buy cheap VPN accounts now",
    "The server password is hunter two",
    "Send payment in bitcoin before midnight",
    "Weapons shipment leaves the harbour",
    "Meeting moved to the north warehouse",
    "Contact the broker for fresh passports",
    "Quarterly report attached for review",
    "Download the installer from our mirror",
    "Your account will be suspended today",
    "Click the link to verify your identity",
    "Limited offer expires on Friday",
    "Call this number for a free quote",
    "Cheap pills shipped overnight",
    "Winner claim your prize here",
    "Private keys stored on this laptop",
    "Wire transfer details inside",
)
ZH_LINES = (
    "翻墙软件 免费下载",
    "比特币 收款地址",
    "科学上网 教程",
    "代开发票 联系客服",
    "账号密码 已经泄露",
    "高薪兼职 日结工资",
    "办理证件 快速到账",
    "内部资料 请勿外传",
    "网络赌博 充值返现",
    "出售个人信息 手机号",
    "低价代购 海外直邮",
    "今天下午 三点开会",
    "免费领取 现金红包",
    "刷单返利 稳赚不赔",
    "私人钥匙 存放地点",
    "银行卡号 转账信息",
)


@dataclass(frozen=True, slots=True)
class TextImage:
    name: str
    data: bytes
    lines: tuple[str, ...]
    lang: str
    """``en`` or ``zh``."""

    @property
    def words(self) -> list[str]:
        """Ground-truth words (Chinese: the space-separated phrases)."""
        return [w for line in self.lines for w in line.split()]


def render_text_image(lines: tuple[str, ...] | list[str], font: str, size: int, *, fmt: str = "PNG",
                      fg: str = "black", bg: str = "white", pad: int = 24, mode: str = "RGB") -> bytes:
    """``lines`` drawn with ``font`` (relative to the font dirs) at ``size`` px, encoded as ``fmt``."""
    from PIL import Image, ImageDraw, ImageFont

    f = ImageFont.truetype(str(font_path(font)), size)
    boxes = [f.getbbox(line) for line in lines]
    width = max(b[2] for b in boxes) + 2 * pad
    step = int(size * 1.6)
    height = step * len(lines) + 2 * pad
    img = Image.new("RGB", (width, height), bg)
    d = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        d.text((pad, pad + i * step), line, font=f, fill=fg)
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    kw = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
    img.save(buf, fmt, **kw)
    return buf.getvalue()


_VARIANTS = (  # font, size, format, colours, mode
    (0, 28, "PNG", ("black", "white"), "RGB"),
    (1, 32, "JPEG", ("black", "white"), "RGB"),
    (2, 24, "WEBP", ("navy", "lightyellow"), "RGB"),
    (3, 36, "GIF", ("white", "darkblue"), "P"),
    (0, 22, "BMP", ("black", "white"), "RGB"),
    (1, 30, "TIFF", ("darkred", "white"), "RGB"),
)


def meme_image(lines: tuple[str, ...] | list[str], font: str, size: int, *, quality: int = 60) -> bytes:
    """White text with a black outline over a busy photo-like background, saved as a lossy JPEG."""
    from PIL import Image, ImageDraw, ImageFont

    f = ImageFont.truetype(str(font_path(font)), size)
    width = max(f.getbbox(line)[2] for line in lines) + 48
    height = int(size * 1.7) * len(lines) + 48
    bg = Image.open(io.BytesIO(photo_like_image(width, height, "PNG"))).convert("RGB")
    d = ImageDraw.Draw(bg)
    for i, line in enumerate(lines):
        d.text((24, 24 + i * int(size * 1.7)), line, font=f, fill="white", stroke_width=max(1, size // 12),
               stroke_fill="black")
    buf = io.BytesIO()
    bg.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@cache
def ocr_sample_set() -> tuple[TextImage, ...]:
    """16 text images, 2 lines each: 8 English (4 DejaVu fonts), 8 Chinese (WenQuanYi).

    Per language: one clean image in each of PNG/JPEG/WebP/GIF/BMP/TIFF (22–36 px, some
    coloured), one small (15 px) low-contrast PNG and one meme-style JPEG (outlined white text
    on a busy background, quality 60).
    """
    out: list[TextImage] = []
    for i, (fi, size, fmt, (fg, bg), mode) in enumerate(_VARIANTS):
        lines = EN_LINES[2 * i: 2 * i + 2]
        data = render_text_image(lines, EN_FONTS[fi], size, fmt=fmt, fg=fg, bg=bg, mode=mode)
        out.append(TextImage(f"en{i}_{fmt.lower()}", data, lines, "en"))
    for i, (_fi, size, fmt, (fg, bg), mode) in enumerate(_VARIANTS):
        lines = ZH_LINES[2 * i: 2 * i + 2]
        data = render_text_image(lines, ZH_FONT, size, fmt=fmt, fg=fg, bg=bg, mode=mode)
        out.append(TextImage(f"zh{i}_{fmt.lower()}", data, lines, "zh"))
    for lang, src, font in (("en", EN_LINES, EN_FONTS[0]), ("zh", ZH_LINES, ZH_FONT)):
        lines = src[12:14]
        out.append(TextImage(f"{lang}_small", render_text_image(lines, font, 15, fg="dimgray", bg="white"),
                             lines, lang))
        lines = src[14:16]
        out.append(TextImage(f"{lang}_meme", meme_image(lines, font, 34), lines, lang))
    return tuple(out)


def photo_like_image(w: int = 640, h: int = 480, fmt: str = "JPEG") -> bytes:
    """A smooth gradient with soft blobs: no text (the OCR triage should skip it)."""
    import numpy as np
    from PIL import Image, ImageFilter

    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(1, w - 1)).astype("uint8")
    g = (y * 255 // max(1, h - 1)).astype("uint8")
    b = ((np.sin(x / 60.0) * np.cos(y / 45.0) + 1) * 100).astype("uint8")
    img = Image.fromarray(np.dstack([r, g, b])).filter(ImageFilter.GaussianBlur(3))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_pixel_bomb(width: int = 50_000, height: int = 50_000, rows: int | None = None) -> bytes:
    """A valid 1-bit greyscale PNG of ``width``×``height`` zero pixels (2.5 Gpx by default).

    All ``rows`` (default: every row) are really there, deflated: 50k×50k is 312 MB of
    scanlines in about 300 KB. Decoding it as RGB would need 7.5 GB.
    """
    rows = height if rows is None else rows
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    line = b"\x00" * (1 + (width + 7) // 8)
    block = line * 256
    c = zlib.compressobj(9)
    parts = []
    done = 0
    while done < rows:
        n = min(256, rows - done)
        parts.append(c.compress(block if n == 256 else line * n))
        done += n
    parts.append(c.flush())
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts)) + \
        _png_chunk(b"IEND", b"")


# ---------------------------------------------------------------- speech

KEYWORDS = ("password", "bitcoin", "weapons", "harbour", "cocaine", "passport", "ransom", "detonator")

POSITIVE_SENTENCES = (
    ("The password for the server is written on the desk", ("password",)),
    ("We will pay you in bitcoin next week", ("bitcoin",)),
    ("The weapons are hidden in the old barn", ("weapons",)),
    ("Meet me at the harbour after dark", ("harbour",)),
    ("He was arrested for selling cocaine", ("cocaine",)),
    ("Bring your passport to the meeting tomorrow", ("passport",)),
    ("They asked for a ransom of ten thousand dollars", ("ransom",)),
    ("The detonator is in the blue box", ("detonator",)),
    ("Change your password and send me the bitcoin", ("password", "bitcoin")),
    ("The boat with the weapons leaves the harbour at six", ("weapons", "harbour")),
    ("I lost my passport somewhere in the station", ("passport",)),
    ("Please do not share the password with anyone", ("password",)),
    ("Transfer the bitcoin to this wallet today", ("bitcoin",)),
    ("The ransom note arrived this morning", ("ransom",)),
    ("Police found cocaine in the truck", ("cocaine",)),
    ("Keep the detonator away from the children", ("detonator",)),
    ("Our ship is waiting in the harbour", ("harbour",)),
    ("The dealer sells weapons to anyone who pays", ("weapons",)),
    ("Your new passport will be ready on Monday", ("passport",)),
    ("Tell me the password before you enter", ("password",)),
)
NEGATIVE_SENTENCES = (
    "We walked in the park and watched the ducks on the pond",
    "The weather will be sunny with a light breeze this afternoon",
    "Please remember to buy milk eggs and bread on the way home",
    "The concert starts at eight so we should leave early",
    "My sister is learning to play the piano this year",
    "The train to the city was late again this morning",
    "Could you send me the slides from yesterday's lecture",
    "The garden looks beautiful after all the rain",
    "Dinner is ready so please wash your hands",
    "The library closes at nine on weekdays",
)
VOICES = ("en-us+m6",)
"""Voice of the asserted clip set (speeds vary): of the en-us variants tried, the one on which
pocketsphinx's US-English model meets the done-when figures; docs/media.md lists the others
(75–100 % recall; British voices do much worse)."""
ALL_VOICES = ("en-us", "en-us+m1", "en-us+m3", "en-us+m5", "en-us+m6", "en-us+f2", "en-us+klatt")
SPEEDS = (160, 150, 170)


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


@cache
def espeak_wav(text: str, voice: str = "en-us", speed: int = 160) -> bytes:
    """``text`` spoken by espeak-ng as WAV bytes (22.05 kHz mono s16)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingTool("espeak-ng not installed (apt-get install espeak-ng)")
    return subprocess.run([exe, "-v", voice, "-s", str(speed), "--stdout", text], check=True,
                          capture_output=True, timeout=60).stdout


def kws_clips(voices: tuple[str, ...] = VOICES) -> list[tuple[str, bytes, tuple[str, ...]]]:
    """(name, wav, expected keywords): 20 positive clips and 10 negative ones, voices and speeds varied."""
    out = []
    for i, (text, kws) in enumerate(POSITIVE_SENTENCES):
        out.append((f"pos{i:02d}", espeak_wav(text, voices[i % len(voices)], SPEEDS[i % len(SPEEDS)]), kws))
    for i, text in enumerate(NEGATIVE_SENTENCES):
        out.append((f"neg{i:02d}", espeak_wav(text, voices[i % len(voices)], SPEEDS[(i + 1) % len(SPEEDS)]), ()))
    return out


def wav_pcm(wav: bytes) -> tuple[int, bytes]:
    """(sample rate, s16 mono PCM) of a WAV made by espeak-ng."""
    import wave

    with wave.open(io.BytesIO(wav)) as w:
        return w.getframerate(), w.readframes(w.getnframes())


def make_wav(pcm: bytes, rate: int) -> bytes:
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


# container format, codec, sample rate, sample format
AUDIO_FORMATS = {
    "wav": ("wav", "pcm_s16le", 22050, "s16"),
    "mp3": ("mp3", "libmp3lame", 22050, "s16p"),
    "ogg": ("ogg", "vorbis", 22050, "fltp"),
    "opus": ("ogg", "libopus", 48000, "s16"),
    "m4a": ("ipod", "aac", 22050, "fltp"),
    "amr": ("amr", "libopencore_amrnb", 8000, "s16"),
}


def encode_audio(wav: bytes, fmt: str) -> bytes:
    """Re-encode an espeak WAV as ``fmt`` (a key of `AUDIO_FORMATS`) with PyAV."""
    import av

    container, codec, rate, sfmt = AUDIO_FORMATS[fmt]
    src_rate, pcm = wav_pcm(wav)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        st = out.add_stream(codec, rate=rate)
        st.layout = "stereo" if codec == "vorbis" else "mono"  # FFmpeg's Vorbis encoder: 2 channels only
        if codec == "libopencore_amrnb":
            st.bit_rate = 12200
        if codec == "vorbis":  # FFmpeg's own Vorbis encoder is flagged experimental
            st.codec_context.options = {"strict": "experimental"}
        _write_audio(out, st, pcm, src_rate, rate, sfmt)
    return buf.getvalue()


def _write_audio(out, st, pcm: bytes, src_rate: int, rate: int, sfmt: str) -> None:
    import av
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = src_rate
    rs = av.AudioResampler(format=sfmt, layout=st.layout.name, rate=rate,
                           frame_size=st.codec_context.frame_size or None)
    for f in [*rs.resample(frame), *rs.resample(None)]:
        for p in st.encode(f):
            out.mux(p)
    for p in st.encode(None):
        out.mux(p)


# ---------------------------------------------------------------- video

# container, video codec, audio codec (+ its sample format)
VIDEO_FORMATS = {
    "mp4": ("mp4", "libx264", "aac", "fltp"),
    "webm": ("webm", "libvpx", "libopus", "s16"),
    "mkv": ("matroska", "libx264", "aac", "fltp"),
    "flv": ("flv", "libx264", "aac", "fltp"),
    "avi": ("avi", "mpeg4", "libmp3lame", "s16p"),
}


def make_video(scenes: list[str], *, seconds_per_scene: float = 2.0, fps: int = 10, fmt: str = "mp4",
               size: tuple[int, int] = (640, 360), gop: int | None = None, audio_wav: bytes | None = None,
               font: str = EN_FONTS[0], vary_background: bool = True) -> bytes:
    """A video showing each of ``scenes`` (a text line, rendered large) in turn, with optional audio.

    ``gop`` is the keyframe interval in frames (default: one keyframe per scene).
    """
    import av
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    container, vcodec, acodec, asfmt = VIDEO_FORMATS[fmt]
    f = ImageFont.truetype(str(font_path(font)), 40)
    per = max(1, round(seconds_per_scene * fps))
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        vs = out.add_stream(vcodec, rate=fps)
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.gop_size = gop or per
        if vcodec == "libx264":
            vs.codec_context.options = {"preset": "ultrafast", "sc_threshold": "0", "bf": "0"}
        elif vcodec == "libvpx":
            vs.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
            vs.bit_rate = 500_000
        as_ = None
        if audio_wav is not None:
            as_ = out.add_stream(acodec, rate=48000 if acodec == "libopus" else 22050)
            as_.layout = "mono"
        n = 0
        for k, text in enumerate(scenes):
            img = Image.new("RGB", size, ((40 * k) % 200 + 30 if vary_background else 30, 60, 90))
            d = ImageDraw.Draw(img)
            d.text((30, size[1] // 2 - 30), text, font=f, fill="white")
            arr = np.asarray(img)
            for j in range(per):
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                frame.pts = n
                frame.time_base = Fraction(1, fps)
                n += 1
                if j % 5 == 0:  # a little motion so P-frames are not empty
                    arr = arr.copy()
                    arr[-10:, (j * 7) % size[0]:(j * 7) % size[0] + 10] = 255
                for p in vs.encode(frame):
                    out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if as_ is not None and audio_wav is not None:
            src_rate, pcm = wav_pcm(audio_wav)
            _write_audio(out, as_, pcm, src_rate, as_.codec_context.sample_rate, asfmt)
    return buf.getvalue()


# ---------------------------------------------------------------- scoring

def _squash(s: str) -> str:
    import re

    return re.sub(r"[\s\W_]+", "", s.casefold())


def words_found(expected: list[str], text: str) -> int:
    """How many of ``expected`` occur in ``text``.

    English words are compared case-insensitively as whole tokens (punctuation dropped);
    Chinese words (the ground truth's space-separated phrases) as substrings of the text with
    all whitespace and punctuation removed, which is how the keyword matcher sees OCR output.
    """
    import re

    tokens = [t for t in re.split(r"[\s\W_]+", text.casefold()) if t]
    squashed = _squash(text)
    n = 0
    for w in expected:
        if w.isascii():
            if w.casefold() in tokens:
                n += 1
        elif _squash(w) in squashed:
            n += 1
    return n


# ---------------------------------------------------------------- objects

def media_obj(payload: bytes, factory: object, *, oid: str = "Fmedia1", **kw: object) -> object:
    """A top-level content object holding ``payload``, sniffed by ``factory`` like the sensor does
    (``kw`` overrides any field, e.g. ``data=None, spool_path=…``)."""
    from appliance.model.content import ContentObject
    from appliance.model.streams import Direction

    mime = factory.sniff(payload[:65536])[0] if payload else ""  # type: ignore[attr-defined]
    fields = {"id": oid, "source": "http", "direction": Direction.TO_CLIENT, "flow": None, "ts_ns": 0,
              "size": len(payload), "md5": "", "sha256": "", "sniffed_mime": mime, "data": payload, **kw}
    return ContentObject(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- spoken keywords (held-out style)

SPOKEN_KEYWORDS_EN = ("fentanyl", "nightjar", "bluefin", "codename", "darknet", "password", "bitcoin wallet",
                      "passport", "weapons", "safe house", "ransom", "detonator")
"""Out-of-vocabulary words for pocketsphinx's dictionary (the first five) and dictionary words/phrases."""
SPOKEN_SENTENCES_EN = (
    ("They are selling fentanyl near the station", ("fentanyl",)),
    ("Operation Nightjar starts at midnight", ("nightjar",)),
    ("The Bluefin shipment arrives on Friday", ("bluefin",)),
    ("Use the codename when you call me", ("codename",)),
    ("You can buy it on the darknet market", ("darknet",)),
    ("The password is under the keyboard", ("password",)),
    ("Send the coins to my bitcoin wallet tonight", ("bitcoin wallet",)),
    ("He forgot his passport at the hotel", ("passport",)),
    ("The weapons are in the truck", ("weapons",)),
    ("We will meet at the safe house", ("safe house",)),
    ("They want a ransom for the boy", ("ransom",)),
    ("Do not touch the detonator", ("detonator",)),
)
SPOKEN_KEYWORDS_ZH = ("芬太尼", "冰毒", "六合彩", "比特币", "护照", "密码")
SPOKEN_SENTENCES_ZH = (
    ("他们在车站附近卖芬太尼", ("芬太尼",)),
    ("这里有冰毒出售", ("冰毒",)),
    ("今晚六合彩开奖", ("六合彩",)),
    ("请用比特币付款", ("比特币",)),
    ("明天把护照带来", ("护照",)),
    ("不要告诉别人密码", ("密码",)),
)
NEGATIVE_SENTENCES_ZH = ("今天天气很好我们去公园散步", "明天上午开会讨论预算", "图书馆晚上九点关门",
                         "孩子们在操场上踢足球")
SPOKEN_VOICES_EN = ("en-us", "en-gb", "en+f3", "en-us+m3", "en-us+m6")
ZH_VOICE = "cmn-latn-pinyin"
"""Debian's ``cmn`` voice reads Hanzi wrongly; ``cmn-latn-pinyin`` with Hanzi input speaks Mandarin."""


def add_noise(wav: bytes, snr_db: float | None, seed: int = 0) -> bytes:
    """``wav`` with white noise at ``snr_db`` (None: unchanged), as a WAV at the same rate."""
    if snr_db is None:
        return wav
    import numpy as np

    rate, pcm = wav_pcm(wav)
    a = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    p_sig = float(np.mean(a[np.abs(a) > 100] ** 2)) if np.any(np.abs(a) > 100) else 1.0
    noise = np.random.default_rng(seed).normal(0.0, (p_sig / 10 ** (snr_db / 10)) ** 0.5, len(a))
    return make_wav((a + noise).clip(-32768, 32767).astype("<i2").tobytes(), rate)


def spoken_clips(lang: str = "en", voices: tuple[str, ...] = SPOKEN_VOICES_EN,
                 noise: tuple[float | None, ...] = (None,)) -> list[tuple[str, bytes, tuple[str, ...]]]:
    """(name, wav, expected keywords) for every sentence × voice × noise level, negatives included."""
    sents = SPOKEN_SENTENCES_EN if lang == "en" else SPOKEN_SENTENCES_ZH
    negs = NEGATIVE_SENTENCES[:4] if lang == "en" else NEGATIVE_SENTENCES_ZH
    vs = voices if lang == "en" else (ZH_VOICE,)
    out = []
    for v in vs:
        for snr in noise:
            tag = f"{v}/{'clean' if snr is None else f'{snr:g}dB'}"
            for i, (text, kws) in enumerate(sents):
                out.append((f"{tag}/pos{i:02d}", add_noise(espeak_wav(text, v, 150), snr, i), kws))
            for i, text in enumerate(negs):
                out.append((f"{tag}/neg{i:02d}", add_noise(espeak_wav(text, v, 150), snr, 100 + i), ()))
    return out
