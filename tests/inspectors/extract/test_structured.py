"""JSON, XML, form bodies and plain text."""

from __future__ import annotations

from inspectors.extract.structured import extract_form, extract_json, extract_plain, extract_xml
from tests.inspectors.extract.samples import EN, ZH


def test_json_keys_and_values():
    p = extract_json((f'{{"title": "{EN}", "items": [{{"zh": "{ZH}"}}, 3, true, null]}}').encode())
    assert EN in p.text and ZH in p.text and "zh: " in p.text and "3" in p.text
    assert not p.anomalies


def test_json_unicode_escapes_and_partial_body():
    body = (f'{{"a": "{EN}", "b": "\\u591c\\u9e70", "c": "cut').encode()
    p = extract_json(body)
    assert EN in p.text and "夜鹰" in p.text and "json_partial" in p.anomalies


def test_json_deep_nesting_does_not_recurse():
    p = extract_json(b"[" * 100_000 + b'"deep"' + b"]" * 100_000)
    assert "deep" in p.text


def test_xml_text_and_attributes():
    p = extract_xml(f'<?xml version="1.0"?><r><t lang="zh" title="{EN}">{ZH}</t></r>'.encode())
    assert EN in p.text and ZH in p.text


def test_xml_declared_encoding_and_header_charset():
    p = extract_xml(f'<?xml version="1.0" encoding="GBK"?><r>{ZH}</r>'.encode("gbk"))
    assert ZH in p.text
    p = extract_xml(f"<r>{ZH}</r>".encode("big5", errors="ignore") or b"", declared_charset="big5")
    assert p.text is not None


def test_xml_entity_bomb_is_not_expanded():
    ents = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    doc = f'<?xml version="1.0"?><!DOCTYPE r [{ents}]><r>{EN} &i;</r>'.encode()
    p = extract_xml(doc)
    assert EN in p.text and len(p.text) < 1000
    assert "xml_entities" in p.anomalies and "xml_entities" in p.truncated


def test_form_urlencoded_in_declared_charset():
    body = b"q=" + "".join(f"%{b:02X}" for b in ZH.encode("gbk")).encode() + b"&title=Project+Nightjar+quarterly+plan"
    p = extract_form(body, declared_charset="gbk")
    assert f"q: {ZH}" in p.text and f"title: {EN}" in p.text


def test_plain_text_limit():
    p = extract_plain(b"a" * 1000, max_chars=100)
    assert len(p.text) == 100 and "text_limit" in p.truncated
