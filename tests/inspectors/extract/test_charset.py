"""Charset choice: BOM, header, meta, UTF-8, UTF-16, detection, fallback."""

from __future__ import annotations

import codecs

import pytest

from inspectors.extract.charset import codec_name, decode, obj_declared_charset
from inspectors.extract.html import extract_html

ZH = "夜鹰计划季度报告"
ZH_T = "夜鷹計劃季度報告"
JA = "夜鷹計画の四半期報告書です"
LONG_ZH = ("这是一个关于网络安全和内容检查的长段落，用于测试字符集检测是否能够正确识别简体中文编码。" * 3)
LONG_ZH_T = ("這是一個關於網路安全和內容檢查的長段落，用於測試字元集偵測是否能夠正確識別繁體中文編碼。" * 3)
LONG_JA = ("これはネットワークセキュリティとコンテンツ検査に関する長い段落で、文字コードの検出をテストします。" * 3)


@pytest.mark.parametrize(("text", "codec"), [(ZH, "gbk"), (ZH_T, "big5"), (JA, "shift_jis"), (ZH, "gb18030")])
def test_declared_charset_wins_on_short_strings(text, codec):
    d = decode(text.encode(codec), declared=codec)
    assert d.text == text and d.source == "header"


def test_short_gbk_without_declaration_falls_back_to_gb18030():
    d = decode("翻墙软件".encode("gbk"))
    assert d.text == "翻墙软件"


@pytest.mark.parametrize(("text", "codec"), [(LONG_ZH, "gbk"), (LONG_ZH_T, "big5"), (LONG_JA, "shift_jis")])
def test_detection_for_longer_text(text, codec):
    d = decode(text.encode(codec))
    assert d.text == text, (d.charset, d.source)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-8"])
def test_bom_beats_declaration(codec):
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE, "utf-8": codecs.BOM_UTF8}[codec]
    d = decode(bom + f"<p>{ZH}</p>".encode(codec), declared="iso-8859-1", html=True)
    assert d.text == f"<p>{ZH}</p>" and d.source == "bom"


def test_utf16_without_bom():
    d = decode(f"Plain text with {ZH} inside it".encode("utf-16-le"))
    assert ZH in d.text and d.source == "utf-16-heuristic"


def test_header_charset_beats_meta():
    doc = f'<html><head><meta charset="big5"></head><body>{ZH}</body></html>'.encode("gbk")
    part = extract_html(doc, declared_charset="gbk")
    assert ZH in part.text and part.meta["charset_source"] == "header"


def test_meta_charset_used_without_header():
    doc = f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=big5"></head><body>{ZH_T}</body>'
    part = extract_html(doc.encode("big5"))
    assert ZH_T in part.text and part.meta["charset_source"] == "meta"


def test_wrong_header_overruled_with_anomaly():
    doc = ("<html><body>" + LONG_ZH + "</body></html>").encode("gbk")
    part = extract_html(doc, declared_charset="utf-8")
    assert LONG_ZH[:20] in part.text and "charset_mismatch" in part.anomalies


def test_aliases_map_to_supersets():
    assert codec_name("GB2312") == "gb18030"
    assert codec_name("big5") == "big5hkscs"
    assert codec_name("Shift_JIS") == "cp932"
    assert codec_name("ISO-8859-1") == "cp1252"
    assert codec_name("rot13") is None and codec_name("nonsense") is None


def test_declared_charset_from_object_fields():
    assert obj_declared_charset({"content_type": "text/html; charset=GBK"}, "") == "gb18030"
    assert obj_declared_charset({}, "text/plain;charset=utf-8") == "utf-8"
    assert obj_declared_charset({}, "text/plain") is None


# --- WHATWG labels and decoders -------------------------------------------------------------

WHATWG = {  # the Encoding Standard's label table for the CJK encodings (encoding: labels)
    "GBK": ("chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk", "iso-ir-58",
            "x-gbk"),
    "gb18030": ("gb18030",),
    "Big5": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
    "EUC-JP": ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
    "ISO-2022-JP": ("csiso2022jp", "iso-2022-jp"),
    "Shift_JIS": ("csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis", "windows-31j", "x-sjis"),
    "EUC-KR": ("cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987", "ks_c_5601-1989",
               "ksc5601", "ksc_5601", "windows-949"),
}
DECODER = {"GBK": "gb18030", "gb18030": "gb18030", "Big5": "big5hkscs", "EUC-JP": "tapsift_euc_jp",
           "ISO-2022-JP": "tapsift_iso2022_jp", "Shift_JIS": "cp932", "EUC-KR": "cp949"}
SAMPLES = {"GBK": ("夜鹰计划 机密 身份证", "gbk"), "gb18030": ("夜鹰计划 𠀀 €", "gb18030"),
           "Big5": ("夜鷹計劃 機密 АБВ абв", "big5hkscs"), "EUC-JP": ("夜鷹計画の資料です", "euc_jp"),
           "ISO-2022-JP": ("夜鷹計画の資料です", "iso2022_jp"), "Shift_JIS": ("夜鷹計画①№㈱", "cp932"),
           "EUC-KR": ("나이트자 프로젝트 기밀 똠", "cp949")}


@pytest.mark.parametrize("encoding", sorted(WHATWG))
def test_every_whatwg_label_selects_its_decoder(encoding):
    text, codec = SAMPLES[encoding]
    data = text.encode(codec)
    for label in WHATWG[encoding]:
        for variant in (label, label.upper(), f" {label} "):
            assert codec_name(variant) == DECODER[encoding], variant
        d = decode(data, declared=label)
        assert d.text == text and d.source == "header", (label, d)
        assert obj_declared_charset({}, f"text/plain; charset={label}") == DECODER[encoding]


def test_euc_jp_and_iso_2022_jp_use_whatwg_jis0208():
    # WHATWG's index-jis0208 maps these six as Windows-31J does (Python's euc_jp does not) and
    # has NEC row 13 (①, №, ㈱) that Python's euc_jp cannot decode at all
    euc = bytes.fromhex("a1c1a1c2a1dda1f1a1f2a2cc") + bytes.fromhex("ada1ade2adea")
    assert decode(euc, declared="euc-jp").text == "～∥－￠￡￢①№㈱"
    sjis_same = "～∥－￠￡￢①№㈱".encode("cp932")
    assert decode(sjis_same, declared="shift_jis").text == decode(euc, declared="euc-jp").text
    jis = "資料の〜".encode("iso2022_jp")
    assert decode(jis, declared="iso-2022-jp").text == "資料の～"


def test_big5_is_hkscs_based_as_in_whatwg():
    """WHATWG's index-big5 follows HKSCS-2008 in the C6A1–C8FE block: Cyrillic at C7F3–C875,
    katakana at C7B1–C7E8. Python's ``big5`` codec uses ETEN's layout there (Cyrillic at
    C7B1…), so a body written with it reads as kana in every browser, and here too."""
    assert "Д".encode("big5hkscs") == bytes.fromhex("c7f7")
    assert decode(bytes.fromhex("c7f3c7f4c7f5"), declared="big5").text == "АБВ"
    eten = "Д".encode("big5")
    assert eten == bytes.fromhex("c7b1") and decode(eten, declared="big5").text == "サ"
    # the rest of Big5 (the characters both layouts share) is unaffected
    assert decode(ZH_T.encode("big5"), declared="big5").text == ZH_T
