"""The md5 inspector: exact hashes on objects and children."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from appliance.model.inspection import InspectorConfig, ListSpec
from fingerprints.library import Entry, Library
from fingerprints.sets import clear_cache
from inspectors.base import InspectContext, InspectorConfigError, guarded
from inspectors.md5 import Md5Inspector
from tests.inspectors.factories import make_obj

BAD = b"MZ\x90\x00 known bad file"
BAD_MD5 = hashlib.md5(BAD).hexdigest()
BAD_SHA = hashlib.sha256(BAD).hexdigest()


def fp_list(name: str, **options) -> ListSpec:
    return ListSpec(name, "fingerprints", weight=3, options=options)


def configured(*lists: ListSpec, **params) -> Md5Inspector:
    clear_cache()
    ins = Md5Inspector()
    ins.configure(InspectorConfig("md5", lists, params))
    return ins


def test_library_match_names_the_entry(tmp_path):
    with Library(tmp_path / "fp.db") as lib:
        lib.add([Entry(md5=BAD_MD5, label="dropper.exe", category="malware-hosting", source="feed-1")])
    ins = configured(fp_list("known-bad", algorithm="md5", path=str(tmp_path / "fp.db")))
    obj = replace(make_obj(BAD), md5=BAD_MD5)  # digest computed by the assembler
    (f,) = guarded(ins, obj, InspectContext())
    assert f.inspector == "md5" and f.rule == "known-bad" and f.score == 3.0
    assert f.detail["label"] == "dropper.exe" and f.detail["category"] == "malware-hosting"
    assert f.detail["hash"] == BAD_MD5 and f.detail["fingerprint_id"] == "1"
    assert "dropper.exe" in f.evidence[0].snippet


def test_child_without_digest_is_hashed_and_sha256_lists(tmp_path):
    ins = configured(fp_list("inline", algorithm="sha256", hashes=(BAD_SHA,)))
    child = replace(make_obj(BAD, oid="Fchild", parent_id="Fzip", depth=1, filename="inner.exe"), source="extract")
    (f,) = guarded(ins, child, InspectContext())
    assert f.detail["algorithm"] == "sha256" and f.detail["filename"] == "inner.exe"
    assert guarded(ins, make_obj(b"other"), InspectContext()) == []


def test_spooled_object(tmp_path):
    p = tmp_path / "spool"
    p.write_bytes(BAD)
    ins = configured(fp_list("l", algorithm="md5", hashes=(BAD_MD5,)))
    assert len(guarded(ins, make_obj(None, spool_path=str(p)), InspectContext())) == 1


def test_hash_list_file(tmp_path):
    p = tmp_path / "filemd5.txt"
    p.write_text(f"{'0' * 32}\n{BAD_MD5}\n")
    ins = configured(fp_list("suricata", algorithm="md5", path=str(p)))
    (f,) = guarded(ins, make_obj(BAD), InspectContext())
    assert f.detail["label"] == "" and BAD_MD5 in f.evidence[0].snippet


def test_truncated_objects_skipped_unless_partial():
    ins = configured(fp_list("l", algorithm="md5", hashes=(BAD_MD5,)))
    obj = make_obj(BAD, truncated=("body_limit",))
    ctx = InspectContext()
    assert guarded(ins, obj, ctx) == [] and "md5_incomplete" in ctx.flags[obj.id]
    ins = configured(fp_list("l", algorithm="md5", hashes=(BAD_MD5,)), partial=True)
    assert len(guarded(ins, obj, InspectContext())) == 1


def test_configuration_errors(tmp_path):
    with pytest.raises(InspectorConfigError, match="perceptual"):
        configured(fp_list("p", algorithm="phash", hashes=("0" * 16,)))
    with pytest.raises(InspectorConfigError, match="kind"):
        configured(ListSpec("k", "keywords"))
    with pytest.raises(InspectorConfigError, match="cannot read"):
        configured(fp_list("m", algorithm="md5", path=str(tmp_path / "missing.db")))
