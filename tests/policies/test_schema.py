"""Policy file validation: every construct, and every error with its line:column."""

from __future__ import annotations

import hashlib
import pickle
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Severity
from policies.schema import (
    DATA_CLASSES,
    Policy,
    PolicyError,
    check_command,
    load_policy,
)
from tests.policies.factories import policy

SAMPLE = Path(__file__).resolve().parents[2] / "policies" / "sample.yaml"

MINIMAL = """\
zones:
  office:
    cidrs: [10.20.0.0/16]
lists:
  secret:
    type: keywords
    keywords: [Nightjar]
profiles:
  leak:
    category: data-leak
    inspect:
      - inspector: keyword
        lists: [secret]
policies:
  - name: r1
    source_zone: office
    profiles: [leak]
"""


def errors(text: str, **kw: object) -> list[str]:
    """The issue lines for a policy text, without the source name."""
    with pytest.raises(PolicyError) as ei:
        load_policy(textwrap.dedent(text), source="p.yaml", **kw)  # type: ignore[arg-type]
    return [s.removeprefix("p.yaml:") for s in str(ei.value).splitlines()]


def one_error(text: str, **kw: object) -> str:
    errs = errors(text, **kw)
    assert len(errs) == 1, errs
    return errs[0]


# --------------------------------------------------------------------------- valid files


def test_sample_validates() -> None:
    p = load_policy(SAMPLE)
    assert p.source == str(SAMPLE)
    assert p.version == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()[:12]
    assert {z.name for z in p.zones} >= {"office", "dmz"}
    assert p.warnings == ()
    code, text = check_command(SAMPLE)
    assert code == 0 and text.startswith(f"{SAMPLE}: OK (") and p.version in text


def test_sample_is_picklable() -> None:
    p = load_policy(SAMPLE)
    assert pickle.loads(pickle.dumps(p)) == p


def test_minimal_and_sources(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(MINIMAL)
    a, b, c = load_policy(f), load_policy(str(f)), load_policy(MINIMAL.encode())
    assert a.version == b.version == c.version
    assert c.source == "<policy>" and a.source == str(f)
    assert isinstance(a, Policy)
    assert a.summary() == f"1 zones, 1 lists, 1 profiles, 1 rules, version {a.version}"


def test_runtime_form() -> None:
    p = policy("""
        zones:
          lan: {cidrs: 10.0.0.0/8, vlans: 20, interfaces: eth1}
        lists:
          kw:
            type: keywords
            mode: word
            keywords:
              - plain
              - {text: heavy, weight: 5}
              - {text: 'a\\d+', mode: regex}
            proximity: [{a: x, b: y, distance: 10, weight: 2}]
            exclusions: [nope]
          ids: {type: dataclass, class: prc_id, weight: 2}
          card_custom: {type: dataclass, class: bank_card, pattern: '[0-9]{16}'}
          emp: {type: dataclass, pattern: 'EMP-[0-9]{6}', validator: none}
          dark: {type: darkwords, words: [{text: 叶子, prior: 0.8}, 飞行]}
          fp: {type: fingerprints, algorithm: md5, hashes: [D41D8CD98F00B204E9800998ECF8427E]}
        profiles:
          p:
            category: data-leak/pii
            severity: critical
            inspect:
              - {inspector: keyword, lists: kw}
              - {inspector: dataclass, lists: [ids, card_custom, emp], params: {max: 3}}
              - {inspector: darkword, lists: [dark]}
              - {inspector: md5, lists: [fp]}
              - {inspector: hiddenlink}
          q:
            category: spam
            severity: 4
            inspect: [{inspector: ml_text}]
            threshold: {weight: 2.5, count: 3}
        policies:
          - {name: r, source_zone: lan, direction: upload, protocol: [HTTP, smtp], profiles: [p, q],
             continue: true, suppression_window_s: 0}
          - {name: old, enabled: false, profiles: [p]}
        suppression: {window_s: 60, key: pair}
    """)
    z = p.zones[0]
    assert (z.interfaces, z.vlans, [str(n) for n in z.networks]) == ({"eth1"}, {20}, ["10.0.0.0/8"])
    kw = p.lists["kw"]
    assert [(k.text, k.weight, k.mode) for k in kw.keywords] == [
        ("plain", 1, "word"), ("heavy", 5, "word"), ("a\\d+", 1, "regex")]
    assert kw.proximity[0].distance == 10 and kw.exclusions == ("nope",)
    assert p.lists["ids"].pattern == "" and p.lists["ids"].validator == "prc_id"
    assert p.lists["ids"].weight == 2
    assert (p.lists["card_custom"].pattern, p.lists["card_custom"].validator) == ("[0-9]{16}", "luhn")
    assert p.lists["emp"].validator == "" and p.lists["emp"].options["class"] == "custom"
    assert p.lists["dark"].options["priors"] == {"叶子": 0.8, "飞行": 0.5}
    assert p.lists["fp"].options["hashes"] == ("d41d8cd98f00b204e9800998ecf8427e",)
    prof = p.profiles["p"]
    assert prof.severity is Severity.CRITICAL and prof.category == "data-leak/pii"
    assert (prof.weight_threshold, prof.count_threshold) == (None, 1)  # default: one match
    assert [c.inspector for c in prof.configs] == ["keyword", "dataclass", "darkword", "md5", "hiddenlink"]
    assert prof.configs[1].params == {"max": 3} and prof.configs[4].lists == ()
    assert p.profiles["q"].severity is Severity.LOW
    assert (p.profiles["q"].weight_threshold, p.profiles["q"].count_threshold) == (2.5, 3)
    assert len(p.rules) == 1  # disabled rule dropped
    r = p.rules[0]
    assert r.src_zones == {"lan"} and r.dst_zones is None and r.direction == "upload"
    assert r.protocols == {"http", "smtp"} and r.continue_ and r.suppression_window_s == 0
    assert r.line == 34
    assert (p.suppression.window_s, p.suppression.key) == (60, "pair")


@pytest.mark.parametrize(
    ("cls", "text", "hit"),
    [
        ("prc_id", "身份证 11010519491231002X 号", "11010519491231002X"),
        ("bank_card", "card 6222 0212 3456 7890 and", "6222 0212 3456 7890"),
        ("bank_card", "card 4111111111111111.", "4111111111111111"),
        ("cn_mobile", "电话13812345678。", "13812345678"),
        ("cn_mobile", "tel +86 138-0000-0000 x", None),
        ("email", "mail zhang.san@corp.example.cn now", "zhang.san@corp.example.cn"),
        ("ipv4", "host 10.20.3.4, then", "10.20.3.4"),
        ("ipv4", "version 1.2.3.4.5", None),
    ],
)
def test_builtin_data_class_patterns(cls: str, text: str, hit: str | None) -> None:
    m = re.search(DATA_CLASSES[cls][0], text)
    assert (m.group(0) if m else None) == hit


def test_warnings_for_unused_and_unreachable() -> None:
    p = policy(MINIMAL.replace("policies:", """\
  unused: {category: spam, inspect: [{inspector: keyword, lists: [secret]}]}
policies:
  - {name: all, profiles: [leak]}""").replace(
        "lists:\n  secret:", "lists:\n  spare: {type: keywords, keywords: [x]}\n  secret:"))
    w = [s.split(": ", 1)[1] for s in p.warnings]
    assert "warning: list 'spare' is not used by any profile" in w
    assert "warning: profile 'unused' is not used by any enabled rule" in w
    assert any("rule 'r1' is never reached" in s for s in w)
    code, text = check_command_text(MINIMAL)
    assert code == 0 and "warning" not in text


def check_command_text(text: str, tmp: Path | None = None) -> tuple[int, str]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "p.yaml"
        f.write_text(text)
        code, out = check_command(f)
        return code, out.replace(str(f), "p.yaml")


# --------------------------------------------------------------------------- errors with line:column


def test_yaml_syntax_error() -> None:
    e = one_error("zones:\n  office: {cidrs: [10.0.0.0/8}\n")
    assert e.startswith("2:30: invalid YAML:") and "line 2, column 19" in e


def test_yaml_tab_error() -> None:
    assert one_error("zones:\n\toffice: {}\n").startswith("2:1: invalid YAML")


def test_unknown_key_top_and_nested() -> None:
    errs = errors(MINIMAL + "extra: 1\n" + "").copy()
    assert errs == ["18:1: unknown key 'extra' (expected one of: description, exceptions, lists, policies, "
                    "profiles, suppression, zones)"]
    e = one_error(MINIMAL.replace("    cidrs: [10.20.0.0/16]", "    cidrs: [10.20.0.0/16]\n    vlan: 3"))
    assert e == "4:5: unknown key 'vlan' (did you mean 'vlans'?)"
    e = one_error(MINIMAL.replace("    profiles: [leak]", "    profiles: [leak]\n    contnue: true"))
    assert e == "18:5: unknown key 'contnue' (did you mean 'continue'?)"
    e = one_error(MINIMAL.replace("keywords: [Nightjar]", "keywords: [{text: N, wieght: 3}]"))
    assert e == "7:26: unknown key 'wieght' (did you mean 'weight'?)"


def test_undefined_references() -> None:
    text = MINIMAL.replace("lists: [secret]", "lists: [secret, secrte]").replace(
        "source_zone: office", "source_zone: ofice\n    destination_zone: [any, nowhere]").replace(
        "profiles: [leak]", "profiles: [leak, leek]")
    assert errors(text) == [
        "13:25: undefined list 'secrte' (did you mean 'secret'?)",
        "16:18: undefined zone 'ofice' (did you mean 'office'?)",
        "17:29: undefined zone 'nowhere'",
        "18:22: undefined profile 'leek' (did you mean 'leak'?)",
    ]


def test_bad_regex_keyword_and_data_class() -> None:
    text = MINIMAL.replace("keywords: [Nightjar]", "keywords:\n      - {text: 'a(b', mode: regex}") + \
        "  - {name: r2, profiles: [leak]}\n"
    text = text.replace("lists:\n  secret:", "lists:\n  emp:\n    type: dataclass\n    pattern: '[0-9'\n"
                        "  nul:\n    type: dataclass\n    pattern: 'x*'\n  secret:")
    errs = errors(text)
    assert "7:14: invalid regex '[0-9': unterminated character set at position 0" in errs
    assert "10:14: regex 'x*' matches the empty string" in errs
    assert "14:16: invalid regex 'a(b': missing ), unterminated subpattern at position 1" in errs


def test_group_mode_regex_is_compiled() -> None:
    e = one_error(MINIMAL.replace("keywords: [Nightjar]", "mode: regex\n    keywords: ['(']"))
    assert e.startswith("8:16: invalid regex '('")


@pytest.mark.parametrize(
    ("cidr", "msg"),
    [
        ("10.20.0.0/33", "invalid CIDR '10.20.0.0/33'"),
        ("10.20.1.0/16", "host bits set (did you mean 10.20.0.0/16?)"),
        ("fd00::/129", "invalid CIDR 'fd00::/129'"),
        ("office", "invalid CIDR 'office'"),
    ],
)
def test_bad_cidr(cidr: str, msg: str) -> None:
    e = one_error(MINIMAL.replace("cidrs: [10.20.0.0/16]", f"cidrs: [10.1.0.0/16, {cidr}]"))
    assert e.startswith("3:26: ") and msg in e


def test_thresholds_must_be_positive() -> None:
    text = MINIMAL.replace("        lists: [secret]",
                           "        lists: [secret]\n    threshold: {weight: 0, count: -2}")
    assert errors(text) == ["14:25: weight: Input should be greater than 0",
                            "14:35: count: Input should be greater than 0"]


def test_duplicate_names() -> None:
    text = MINIMAL.replace("zones:\n", "zones:\n  office: {vlans: [5]}\n")
    text += "  - {name: r1, profiles: [leak]}\n"
    assert errors(text) == ["3:3: duplicate key 'office' (first defined at line 2)",
                            "19:12: duplicate rule name 'r1' (first at line 16)"]


def test_unknown_inspector_and_custom_registry() -> None:
    text = MINIMAL.replace("inspector: keyword", "inspector: keywrd")
    assert one_error(text) == "12:20: unknown inspector 'keywrd' (did you mean 'keyword'?)"
    text = MINIMAL.replace("      - inspector: keyword\n        lists: [secret]", "      - inspector: yara")
    assert one_error(text).startswith("12:20: unknown inspector 'yara' (known: darkword, dataclass")
    p = load_policy(text + "\n", inspectors={"yara", "keyword"})
    assert p.profiles["leak"].configs[0].inspector == "yara"


def test_list_kind_must_suit_inspector() -> None:
    text = MINIMAL.replace("lists: [secret]", "lists: [secret, fp]").replace(
        "lists:\n  secret:", "lists:\n  fp: {type: fingerprints, algorithm: phash, path: /x.set}\n  secret:")
    assert one_error(text) == ("14:25: list 'fp' is a fingerprints list; "
                               "inspector 'keyword' takes keywords lists")
    text2 = text.replace("inspector: keyword\n        lists: [secret, fp]",
                         "inspector: md5\n        lists: [fp]")
    assert one_error(text2) == "14:17: list 'fp' holds phash fingerprints; inspector 'md5' uses md5 or sha256"
    text3 = MINIMAL.replace("        lists: [secret]\n", "")
    assert one_error(text3) == "12:9: inspector 'keyword' needs at least one list ('lists')"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("keywords: [Nightjar]", "keywords: [10086]",
         "7:16: keyword 10086 is a number in YAML; put it in quotes: '10086'"),
        ("keywords: [Nightjar]", "keywords: []",
         "7:15: keywords: List should have at least 1 item after validation, not 0"),
        ("type: keywords", "type: words",
         "6:11: unknown list type 'words' (expected one of: keywords, dataclass, darkwords, fingerprints, domains)"),
        ("    type: keywords\n", "",
         "6:5: missing 'type' (one of: keywords, dataclass, darkwords, fingerprints, domains)"),
        ("category: data-leak", "category: leaks", "10:15: category: Input should be"),
        ("category: data-leak", "category: spam\n    severity: urgent",
         "11:15: severity must be one of critical, high"),
        ("source_zone: office", "source_zone: office\n    direction: up",
         "17:16: direction: Input should be 'upload', 'download' or 'any'"),
        ("source_zone: office", "source_zone: office\n    continue: 1",
         "17:15: continue: Input should be a valid boolean"),
        ("    cidrs: [10.20.0.0/16]", "    vlans: [4096]",
         "3:13: vlans: Input should be less than or equal to 4095"),
        ("    cidrs: [10.20.0.0/16]", "    description: empty",
         "3:5: a zone needs at least one of interfaces, vlans, cidrs"),
        ("  office:", "  any:", "2:3: 'any' is reserved"),
        ("  office:", "  'bad name':", "2:3: invalid name 'bad name'"),
        ("    profiles: [leak]", "    profile: [leak]", "15:5: missing required key 'profiles'"),
        ("type: keywords\n    keywords: [Nightjar]", "type: dataclass",
         "6:5: a custom data class needs a 'pattern'"),
        ("type: keywords\n    keywords: [Nightjar]",
         "type: fingerprints\n    algorithm: md5\n    hashes: [abc]",
         "8:14: not a md5 hash (32 hex digits): 'abc'"),
    ],
)
def test_field_errors(old: str, new: str, expected: str) -> None:
    assert old in MINIMAL
    errs = errors(MINIMAL.replace(old, new))
    assert any(e.startswith(expected) for e in errs), errs


def test_all_errors_are_collected_in_file_order() -> None:
    text = MINIMAL.replace("cidrs: [10.20.0.0/16]", "cidrs: [10.20.0.0/99]").replace(
        "inspector: keyword", "inspector: nope").replace("source_zone: office", "source_zone: lab")
    text += "junk: 1\n"
    errs = errors(text)
    assert [e.split(":", 2)[0] for e in errs] == ["3", "12", "16", "18"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "1:1: policy file is empty"),
        (b"# only a comment\n", "1:1: policy file is empty"),
        (b"- a\n- b\n", "1:1: the top level must be a mapping"),
        (b"zones:\n  x: \xff\n", "2:6: file is not UTF-8"),
    ],
)
def test_whole_file_errors(raw: bytes, expected: str) -> None:
    with pytest.raises(PolicyError) as ei:
        load_policy(raw, source="p.yaml")
    assert str(ei.value).startswith("p.yaml:" + expected)


def test_check_command_lines(tmp_path: Path) -> None:
    code, text = check_command_text(MINIMAL.replace("source_zone: office", "source_zone: lab") + "x: 1\n")
    assert code == 1
    assert text.splitlines() == ["p.yaml:16:18: undefined zone 'lab'",
                                 "p.yaml:18:1: unknown key 'x' (expected one of: description, exceptions, "
                                 "lists, policies, profiles, suppression, zones)"]
    code, text = check_command(tmp_path / "missing.yaml")
    assert code == 1 and text == f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory"
    code, text = check_command_text(MINIMAL)
    assert code == 0
    assert re.fullmatch(r"p\.yaml: OK \(1 zones, 1 lists, 1 profiles, 1 rules, version [0-9a-f]{12}\)", text)


def test_merge_keys_and_anchors() -> None:
    p = policy("""
        zones:
          a: &base {cidrs: [10.1.0.0/16], vlans: [1]}
          b:
            <<: *base
            vlans: [2]
        lists:
          k: {type: keywords, keywords: [x]}
        profiles:
          p: {category: spam, inspect: [{inspector: keyword, lists: [k]}]}
        policies:
          - {name: r, source_zone: [a, b], profiles: [p]}
    """)
    assert [sorted(z.vlans) for z in p.zones] == [[1], [2]]


def test_yaml_scalar_gotchas_are_explained() -> None:
    e = one_error(MINIMAL.replace("name: r1", "name: off"))
    assert e == ("15:11: name: Input should be a valid string (YAML read it as false (yes/no/on/off are "
                 "booleans); put the value in quotes)")
    e = one_error(MINIMAL.replace("name: r1", "name: 12"))
    assert e.endswith("(YAML read it as the number 12; put the value in quotes)")


def test_aliased_mapping_with_merge_used_twice() -> None:
    p = policy("""
        zones:
          a: &a {cidrs: [10.1.0.0/16]}
          b: &b {<<: *a, vlans: [2]}
          c: *b
        lists:
          k: {type: keywords, keywords: [x]}
        profiles:
          p: {category: spam, inspect: [{inspector: keyword, lists: [k]}]}
        policies:
          - {name: r, source_zone: [a, b, c], profiles: [p]}
    """)
    assert [sorted(z.vlans) for z in p.zones] == [[], [2], [2]]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_files_give_policy_or_located_errors(data: st.DataObject) -> None:
    """Any edit of a valid file either loads or fails with located PolicyErrors, never a crash."""
    text = data.draw(st.sampled_from([MINIMAL, SAMPLE.read_text()]))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 12)))
        edit = data.draw(st.sampled_from(["", " ", "\n", "-", ":", "[", "{", "'", "0", "x", "any"]))
        text = text[:i] + edit + text[j:]
    nlines = text.count("\n") + 2
    try:
        load_policy(text.encode(), source="p.yaml")
    except PolicyError as exc:
        assert exc.issues
        assert all(1 <= i.line <= nlines and i.column >= 1 for i in exc.issues), exc.issues


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        load_policy(text.encode("utf-8", "surrogatepass"), source="p.yaml")
    except PolicyError:
        pass


def test_control_character_is_located() -> None:
    assert one_error("zones:\n  a: \x07\n") == "2:6: invalid YAML: character '\\x07' is not allowed"


def test_relative_paths_are_relative_to_the_policy_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A fingerprint file named relatively lives next to the policy; a model name is kept as
    written (the sensor resolves it inside its model directory)."""
    from policies.schema import load_policy as _load

    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "policy.yaml"
    p.write_text(
        "lists:\n  fp: {type: fingerprints, algorithm: md5, path: lists/known.txt}\n"
        "profiles:\n  t:\n    category: fraud\n    inspect:\n"
        "      - {inspector: ml_text, params: {model: models}}\n"
        "      - {inspector: md5, lists: [fp]}\n"
        "policies:\n  - {name: r, profiles: [t]}\n"
    )
    pol = _load(p)
    ml, md5 = pol.profiles["t"].configs
    assert ml.params["model"] == "models"
    assert md5.lists[0].options["path"] == str(tmp_path / "sub" / "lists" / "known.txt")
    assert pol.where("profiles.t.inspect.0.params.model") == f"{p}:7:46"
    assert pol.where("lists.fp.path") == f"{p}:2:50" and pol.where("nothing") == str(p)

@pytest.mark.parametrize(("model", "problem"), [
    ("../../etc/planted.pkl", "'..' is not allowed"),
    ("sub/../../x", "'..' is not allowed"),
    ("/tmp/planted.pkl", "outside the model directory"),
    ("/var/lib/tapsift/models-evil/x.json", "outside the model directory"),
    ("", "must be a file or folder name"),
])
def test_model_names_outside_the_model_directory_are_refused(model: str, problem: str) -> None:
    """What the console can save is what the schema accepts: no model path may leave the model
    directory (the analyst who planted a pickle named it by an absolute path)."""
    text = ("profiles:\n  t:\n    category: fraud\n    inspect:\n"
            f"      - {{inspector: ml_text, params: {{model: '{model}'}}}}\n"
            "policies:\n  - {name: r, profiles: [t]}\n")
    with pytest.raises(PolicyError) as exc:
        load_policy(text)
    (issue,) = exc.value.issues
    assert (issue.line, issue.column) == (5, 46) and problem in issue.message


def test_model_names_inside_the_model_directory_are_accepted() -> None:
    for model in ("text-v0002.json", "sub/dir", "/var/lib/tapsift/models", "/var/lib/tapsift/models/t.json"):
        text = ("profiles:\n  t:\n    category: fraud\n    inspect:\n"
                f"      - {{inspector: ml_text, params: {{model: '{model}'}}}}\n"
                "policies:\n  - {name: r, profiles: [t]}\n")
        assert load_policy(text).profiles["t"].configs[0].params["model"] == model
    other = ("profiles:\n  t:\n    category: fraud\n    inspect:\n"
             "      - {inspector: ml_text, params: {model: /srv/models/t.json}}\n"
             "policies:\n  - {name: r, profiles: [t]}\n")
    assert load_policy(other, model_dir="/srv/models").profiles["t"].configs[0].params["model"] == "/srv/models/t.json"
    with pytest.raises(PolicyError):
        load_policy(other)
