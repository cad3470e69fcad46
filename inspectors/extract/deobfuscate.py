"""A bounded evaluator for the string expressions that inline scripts write into the page.

No JavaScript engine: the script is tokenised and only the expressions that reach an HTML
*sink* are evaluated, over a small pure subset of the language:

- string literals with every escape (``\\xHH``, ``\\uHHHH``, ``\\u{…}``, octal, ``\\n``…) and
  template literals without substitutions; numbers;
- ``+`` concatenation, parentheses, ``[…].join("")``, ``.concat(…)``, ``.split("").reverse().join("")``
  and ``.toString()``;
- ``unescape`` (``%XX`` and ``%uXXXX``), ``escape``, ``decodeURIComponent``/``decodeURI``, ``atob``,
  ``String.fromCharCode(…)``, ``escape``-free ``eval(…)`` (the string is itself deobfuscated);
- variables assigned such values (``var``/``let``/``const``/plain ``=`` and ``+=``).

Sinks: ``document.write``/``writeln``, ``….innerHTML``/``outerHTML`` ``=``/``+=``,
``insertAdjacentHTML(pos, …)`` give **markup**; ``location``/``location.href`` ``=``,
``location.replace``/``assign`` and ``window.open`` give **redirect URLs**.

Everything is bounded: ``max_steps`` tokens read and evaluated (nested ``eval`` included; the
HTML walk passes what is left of its per-page budget), ``max_bytes`` of produced strings, 3
levels of nested ``eval``. An unknown construct makes
the expression unknown (its parts are dropped), never an exception.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

_TOKEN = re.compile(r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<str>"(?:[^"\\\n]|\\.|\\\n)*"|'(?:[^'\\\n]|\\.|\\\n)*'|`(?:[^`\\$]|\\.|\$(?!\{))*`)
  | (?P<num>0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
  | (?P<id>[A-Za-z_$][\w$]*)
  | (?P<op>\+=|===|!==|==|!=|=>|[-+*/%=(){}\[\],.;:?!<>&|^~])
""", re.S | re.X)
_ESC = re.compile(r"\\(u\{[0-9a-fA-F]{1,6}\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[0-7]{1,3}|\n|.)", re.S)
_SIMPLE_ESC = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0", "\n": ""}
_PCT_U = re.compile(r"%u([0-9a-fA-F]{4})")
_PCT = re.compile(r"(?:%[0-9a-fA-F]{2})+")
_UNKNOWN = None


def js_unescape_literal(body: str) -> str:
    """The value of a JS string literal's body (escapes decoded)."""
    if "\\" not in body:
        return body

    def rep(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] == "u" and len(e) > 1:
            cp = int(e[2:-1] if e[1] == "{" else e[1:], 16)
            return chr(cp) if cp < 0x110000 else ""
        if e[0] == "x" and len(e) == 3:
            return chr(int(e[1:], 16))
        if e[0] in "01234567" and e != "0":
            return chr(int(e, 8) & 0xFF)
        return _SIMPLE_ESC.get(e, e)

    return _ESC.sub(rep, body)


def js_unescape_fn(s: str) -> str:
    """JavaScript's ``unescape``: ``%uXXXX`` and ``%XX`` (Latin-1) sequences."""
    s = _PCT_U.sub(lambda m: chr(int(m.group(1), 16)), s)
    return re.sub(r"%([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


def _uri_decode(s: str) -> str:
    return _PCT.sub(lambda m: unquote(m.group(0), errors="replace"), s)


def _escape(s: str) -> str:
    """JavaScript's ``escape``."""
    keep = "@*_+-./"
    return "".join(c if (c.isascii() and c.isalnum()) or c in keep else
                   (f"%{ord(c):02X}" if ord(c) < 256 else f"%u{ord(c):04X}") for c in s)


def _atob(s: str) -> str | None:
    s = re.sub(r"\s+", "", s)
    try:
        raw = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.decode("latin-1")


@dataclass(slots=True)
class Recovered:
    """What the script would put into the page."""

    markup: list[str] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    exhausted: bool = False
    steps: int = 0
    """Budget steps used (tokens read and evaluated), for a caller's per-page budget."""


class _Budget:
    __slots__ = ("bytes", "steps")

    def __init__(self, steps: int, nbytes: int) -> None:
        self.steps = steps
        self.bytes = nbytes


class _Eval:
    """Evaluates sink expressions over one script's tokens."""

    def __init__(self, toks: list[tuple[str, str]], budget: _Budget, out: Recovered, depth: int,
                 env: dict[str, str]) -> None:
        self.t = toks
        self.i = 0
        self.b = budget
        self.out = out
        self.depth = depth
        self.env = env

    # -- token helpers --
    def peek(self, k: int = 0) -> tuple[str, str]:
        j = self.i + k
        return self.t[j] if j < len(self.t) else ("eof", "")

    def eat(self, value: str) -> bool:
        if self.peek()[1] == value and self.peek()[0] in ("op", "id"):
            self.i += 1
            return True
        return False

    def step(self) -> bool:
        self.b.steps -= 1
        if self.b.steps <= 0:
            self.out.exhausted = True
            return False
        return True

    def keep(self, s: str | None) -> str | None:
        if s is None:
            return None
        self.b.bytes -= len(s)
        if self.b.bytes < 0:
            self.out.exhausted = True
            return None
        return s

    # -- expressions --
    def expr(self) -> str | None:
        """``term ('+' term)*``; None when any part is unknown."""
        val = self.postfix()
        while self.peek() == ("op", "+") and self.step():
            self.i += 1
            rhs = self.postfix()
            val = None if val is None or rhs is None else self.keep(val + rhs)
        return val

    def args(self) -> list[str | None]:
        out: list[str | None] = []
        if self.eat(")"):
            return out
        while self.step():
            out.append(self.expr())
            if self.eat(","):
                continue
            self.eat(")")
            break
        return out

    def postfix(self) -> str | None:
        val = self.primary()
        while self.peek() == ("op", ".") and self.peek(1)[0] == "id" and self.step():
            name = self.peek(1)[1]
            if self.peek(2) != ("op", "("):
                break
            self.i += 3
            a = self.args()
            if val is None:
                continue
            if name == "join":
                val = val  # arrays are flattened into strings by primary (joined with "")
            elif name == "concat":
                val = None if any(x is None for x in a) else self.keep(val + "".join(a))  # type: ignore[arg-type]
            elif name == "split" and a and a[0] == "":
                val = "\x00" + val  # a list of characters, reversed by .reverse()
            elif name == "reverse":
                val = "\x00" + val[1:][::-1] if val.startswith("\x00") else val
            elif name in ("toString", "trim", "valueOf"):
                pass
            else:
                val = None
        if val is not None and val.startswith("\x00"):
            val = val[1:]
        return val

    def primary(self) -> str | None:
        if not self.step():
            return None
        kind, v = self.peek()
        self.i += 1
        if kind == "str":
            return self.keep(js_unescape_literal(v[1:-1]))
        if kind == "num":
            return v
        if kind == "op" and v == "(":
            val = self.expr()
            self.eat(")")
            return val
        if kind == "op" and v == "[":
            parts: list[str | None] = []
            while self.step() and not self.eat("]"):
                parts.append(self.expr())
                if not self.eat(","):
                    self.eat("]")
                    break
            return None if any(p is None for p in parts) else "".join(parts)  # type: ignore[arg-type]
        if kind != "id":
            return None
        # dotted names: window.atob, String.fromCharCode, document.write…
        name = v
        while self.peek() == ("op", ".") and self.peek(1)[0] == "id" and self.peek(2) == ("op", "("):
            name += "." + self.peek(1)[1]
            self.i += 2
            break
        if self.eat("("):
            return self.call(name.removeprefix("window."), self.args())
        return self.env.get(name)

    def call(self, name: str, a: list[str | None]) -> str | None:
        if name == "String.fromCharCode":
            try:
                return self.keep("".join(chr(int(x, 0) if x and x[:2].lower() == "0x" else int(float(x or "x")))
                                         for x in a))
            except (ValueError, TypeError, OverflowError):
                return None
        if not a or a[0] is None:
            return None
        s = a[0]
        if name in ("unescape",):
            return self.keep(js_unescape_fn(s))
        if name in ("decodeURIComponent", "decodeURI"):
            return self.keep(_uri_decode(s))
        if name == "escape":
            return self.keep(_escape(s))
        if name == "atob":
            return self.keep(_atob(s))
        if name in ("String", "eval"):
            if name == "eval":
                self.nested(s)
            return s
        return None

    def nested(self, code: str) -> None:
        if self.depth >= 3:
            self.out.exhausted = True
            return
        run(code, self.b, self.out, self.depth + 1, self.env)

    # -- statements --
    def statement(self) -> None:
        """One pass from the current token: a sink, an assignment, or skip a token."""
        kind, v = self.peek()
        if kind != "id":
            self.i += 1
            return
        start = self.i
        dotted = [v]
        j = self.i + 1
        while self.peek(j - self.i) == ("op", ".") and self.peek(j - self.i + 1)[0] == "id":
            dotted.append(self.peek(j - self.i + 1)[1])
            j += 2
        self.i = j
        last = dotted[-1]
        nxt = self.peek()
        if nxt == ("op", "(") and last in ("write", "writeln") and len(dotted) >= 2:
            self.i += 1
            vals = self.args()
            if all(x is not None for x in vals) and vals:
                self.out.markup.append("".join(vals))  # type: ignore[arg-type]
            return
        if nxt == ("op", "(") and last == "insertAdjacentHTML":
            self.i += 1
            vals = self.args()
            if len(vals) >= 2 and vals[1] is not None:
                self.out.markup.append(vals[1])
            return
        if nxt == ("op", "(") and ((last in ("replace", "assign") and "location" in dotted) or dotted[-2:] == [
                "window", "open"] or dotted == ["open"]):
            self.i += 1
            vals = self.args()
            if vals and vals[0]:
                self.out.redirects.append(vals[0])
            return
        if nxt == ("op", "(") and last == "eval":
            self.i += 1
            vals = self.args()
            if vals and vals[0] is not None:
                self.nested(vals[0])
            return
        if nxt[0] == "op" and nxt[1] in ("=", "+="):
            op = nxt[1]
            self.i += 1
            val = self.expr()
            if val is None:
                return
            if last in ("innerHTML", "outerHTML"):
                self.out.markup.append(val)
            elif last == "location" or dotted[-2:] == ["location", "href"]:
                self.out.redirects.append(val)
            elif len(dotted) == 1:
                self.env[v] = self.keep(self.env.get(v, "") + val) or "" if op == "+=" else val
            return
        if v in ("var", "let", "const"):
            return  # the name and its assignment are the next statement
        self.i = max(self.i, start + 1)


def _tokens(code: str, limit: int) -> tuple[list[tuple[str, str]], bool]:
    """Up to ``limit`` tokens of ``code`` and whether it was cut short (characters no token
    matches are skipped)."""
    out: list[tuple[str, str]] = []
    append = out.append
    for m in _TOKEN.finditer(code):
        kind = m.lastgroup
        if kind != "ws":
            if len(out) >= limit:
                return out, True
            append((kind or "", m.group()))
    return out, False


def run(code: str, budget: _Budget, out: Recovered, depth: int = 0, env: dict[str, str] | None = None) -> None:
    """Evaluate ``code``'s sinks into ``out`` within ``budget`` (shared by nested evals)."""
    toks, cut = _tokens(code, max(0, budget.steps))
    if cut:
        out.exhausted = True
    ev = _Eval(toks, budget, out, depth, env if env is not None else {})
    while ev.i < len(toks) and ev.step():
        ev.statement()


def deobfuscate(code: str, *, max_steps: int = 200_000, max_bytes: int = 1 << 20) -> Recovered:
    """The markup and redirect URLs that ``code`` writes (see the module docstring)."""
    out = Recovered()
    if max_steps <= 0:
        out.exhausted = True
        return out
    budget = _Budget(max_steps, max_bytes)
    run(code, budget, out)
    out.steps = max_steps - max(0, budget.steps)
    return out
