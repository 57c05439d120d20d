"""Go (RE2) regular expressions for the sysctl allowlist, matched without the `re` module (which costs ~5 ms of
start-up on every call: tests/unit/test_startup_budget.py).

The allowlist only asks "does this pattern match somewhere in the key?" (Go's regexp.MatchString), so this is a
recogniser, not a matcher: `ends(node, i)` is the set of positions a node can end at when started at i, memoised
per search (polynomial, no backtracking blow-up). Supported, as RE2 has them: literals and escapes (\\. \\t \\n
\\xHH \\x{H..}), `.`, classes `[a-z_]` `[^...]` with \\d \\w \\s and [:alpha:]-style names, groups `(...)` `(?:...)`
`(?P<name>...)`, flags `(?i)` `(?s)` `(?m)` `(?U)` (also `(?i:...)`), alternation, `* + ? {n} {n,} {n,m}` (lazy
forms too), anchors `^ $ \\A \\z \\b \\B`. Unicode classes (\\p), octal escapes and \\Q...\\E are refused with
RegexpError, as a pattern that does not parse is.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

    Pred = Callable[[str], bool]
    Node = tuple[object, ...]

MAX_REPEAT = 1000
_WORD = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_PERL = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\t\n\f\r "}
_POSIX = {"alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\x00-\x7f", "blank": "\t ", "cntrl": "\x00-\x1f\x7f",
          "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@[-`{-~",
          "space": "\t\n\v\f\r ", "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f"}
_CONTROL = {"a": "\a", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v"}


class RegexpError(ValueError):
    pass


def _ranges(spec: str) -> list[tuple[str, str]]:
    """'0-9A-Z_' -> [('0', '9'), ('A', 'Z'), ('_', '_')]."""
    out, i = [], 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.append((spec[i], spec[i + 2]))
            i += 3
        else:
            out.append((spec[i], spec[i]))
            i += 1
    return out


def _in(ranges: list[tuple[str, str]], negated: bool, fold: bool) -> Pred:
    def test(c: str) -> bool:
        return any(lo <= c <= hi for lo, hi in ranges)

    if fold:
        def pred(c: str) -> bool:
            return (test(c) or test(c.lower()) or test(c.upper())) != negated
    else:
        def pred(c: str) -> bool:
            return test(c) != negated
    return pred


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.p, self.i = pattern, 0
        self.fold = self.dotall = self.multiline = False

    def error(self, what: str, text: str) -> RegexpError:
        return RegexpError(f"error parsing regexp: {what}: `{text}`")

    def peek(self) -> str:
        return self.p[self.i] if self.i < len(self.p) else ""

    def parse(self) -> Node:
        node = self.alternation()
        if self.i < len(self.p):   # only a stray ')' stops an alternation early
            raise self.error("unexpected )", self.p)
        return node

    def alternation(self) -> Node:
        saved = (self.fold, self.dotall, self.multiline)
        branches = [self.concat()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.concat())
        self.fold, self.dotall, self.multiline = saved   # flags set inside a group end with it
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def concat(self) -> Node:
        items: list[Node] = []
        while self.peek() not in ("", "|", ")"):
            atom = self.atom()
            if atom is not None:
                items.append(self.quantified(atom))
        return items[0] if len(items) == 1 else ("cat", items)

    def quantified(self, atom: Node) -> Node:
        start = self.i
        bounds = self.quantifier()
        if bounds is None:
            return atom
        if self.peek() == "?":
            self.i += 1   # lazy: the same language
        if self.quantifier_ahead():
            raise self.error("invalid nested repetition operator", self.p[start:self.i + 1])
        return ("rep", atom, bounds[0], bounds[1])

    def quantifier_ahead(self) -> bool:
        saved = self.i
        found = self.quantifier() is not None
        self.i = saved
        return found

    def quantifier(self) -> tuple[int, int | None] | None:
        c = self.peek()
        if c in ("*", "+", "?"):
            self.i += 1
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        if c != "{":
            return None
        close = self.p.find("}", self.i)
        body = self.p[self.i + 1:close] if close > 0 else ""
        low, comma, high = body.partition(",")
        if not low.isdigit() or not (high.isdigit() or high == "") or not low.isascii() or not high.isascii():
            return None   # not a repeat: a literal '{' (as RE2)
        minimum, maximum = int(low), (int(high) if high else None) if comma else int(low)
        if minimum > MAX_REPEAT or (maximum is not None and (maximum > MAX_REPEAT or maximum < minimum)):
            raise self.error("invalid repeat count", self.p[self.i:close + 1])
        self.i = close + 1
        return minimum, maximum

    def atom(self) -> Node | None:
        c = self.p[self.i]
        if c in "*+?" or (c == "{" and self.quantifier_ahead()):
            raise self.error("missing argument to repetition operator", c)
        self.i += 1
        if c == "(":
            return self.group()
        if c == "[":
            return ("char", self.char_class())
        if c == ".":
            return ("char", (lambda ch: True) if self.dotall else (lambda ch: ch != "\n"))
        if c == "^":
            return ("assert", "bol" if self.multiline else "bot")
        if c == "$":
            return ("assert", "eol" if self.multiline else "eot")
        if c == "\\":
            return self.escape()
        return self.literal(c)

    def literal(self, c: str) -> Node:
        return ("char", _in([(c, c)], False, self.fold))

    def group(self) -> Node | None:
        start = self.i - 1
        saved = (self.fold, self.dotall, self.multiline)
        if self.p.startswith("?P<", self.i) or self.p.startswith("?<", self.i):
            end = self.p.find(">", self.i)
            if end < 0:
                raise self.error("invalid named capture", self.p[start:])
            self.i = end + 1
        elif self.peek() == "?":
            end = min((k for k in (self.p.find(":", self.i), self.p.find(")", self.i)) if k >= 0), default=-1)
            flags = self.p[self.i + 1:end] if end >= 0 else ""
            if end < 0 or not (self._flags(flags) or (flags == "" and self.p[end] == ":")):
                raise self.error("invalid or unsupported Perl syntax", self.p[start:end + 1 if end >= 0 else None])
            self.i = end + 1
            if self.p[end] == ")":
                return None   # (?i): the flags hold until the enclosing group ends
        inner = self.alternation()
        self.fold, self.dotall, self.multiline = saved
        if self.peek() != ")":
            raise self.error("missing closing )", self.p)
        self.i += 1
        return inner

    def _flags(self, text: str) -> bool:
        on = True
        for c in text:
            if c == "-" and on:
                on = False
            elif c == "i":
                self.fold = on
            elif c == "s":
                self.dotall = on
            elif c == "m":
                self.multiline = on
            elif c != "U":
                return False
        return bool(text) and not text.endswith("-")

    def escape(self) -> Node:
        start = self.i - 1
        c = self.peek()
        if not c:
            raise self.error("trailing backslash at end of expression", "")
        self.i += 1
        if c in "AzbB":
            return ("assert", {"A": "bot", "z": "eot", "b": "wb", "B": "nwb"}[c])
        if c.lower() in _PERL:
            return ("char", _in(_ranges(_PERL[c.lower()]), c.isupper(), False))
        return self.literal(self.escaped_char(c, start))

    def escaped_char(self, c: str, start: int) -> str:
        if c in _CONTROL:
            return _CONTROL[c]
        if c == "x":
            if self.peek() == "{":
                end = self.p.find("}", self.i)
                digits = self.p[self.i + 1:end] if end > 0 else ""
                self.i = end + 1 if end > 0 else self.i
            else:
                digits = self.p[self.i:self.i + 2]
                self.i += 2
            if digits and len(digits) <= 8 and all(d in "0123456789abcdefABCDEF" for d in digits) \
                    and int(digits, 16) <= 0x10FFFF:
                return chr(int(digits, 16))
            raise self.error("invalid escape sequence", self.p[start:self.i])
        if c.isascii() and not c.isalnum():
            return c   # any ASCII punctuation may be escaped
        raise self.error("invalid escape sequence", "\\" + c)

    def char_class(self) -> Pred:
        start = self.i - 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        ranges: list[tuple[str, str]] = []
        preds: list[Pred] = []
        first = True
        while True:
            c = self.peek()
            if not c:
                raise self.error("missing closing ]", self.p[start:])
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if self.p.startswith("[:", self.i):
                end = self.p.find(":]", self.i + 2)
                name = self.p[self.i + 2:end] if end > 0 else ""
                neg = name.startswith("^")
                if name.lstrip("^") not in _POSIX:
                    raise self.error("invalid character class range", self.p[self.i:end + 2 if end > 0 else None])
                preds.append(_in(_ranges(_POSIX[name.lstrip("^")]), neg, False))
                self.i = end + 2
                continue
            if c == "\\" and self.p[self.i + 1:self.i + 2].lower() in _PERL:
                letter = self.p[self.i + 1]
                preds.append(_in(_ranges(_PERL[letter.lower()]), letter.isupper(), False))
                self.i += 2
                continue
            low = self.class_char()
            high = low
            if self.peek() == "-" and self.p[self.i + 1:self.i + 2] not in ("]", ""):
                self.i += 1
                high = self.class_char()
                if high < low:
                    raise self.error("invalid character class range", f"{low}-{high}")
            ranges.append((low, high))
        simple = _in(ranges, False, self.fold)
        if not preds:
            return _in(ranges, negated, self.fold)
        return lambda ch: (simple(ch) or any(p(ch) for p in preds)) != negated

    def class_char(self) -> str:
        c = self.p[self.i]
        self.i += 1
        if c != "\\":
            return c
        if self.i >= len(self.p):
            raise self.error("missing closing ]", self.p)
        e = self.p[self.i]
        self.i += 1
        return self.escaped_char(e, self.i - 2)


class Regexp:
    def __init__(self, pattern: str, root: Node) -> None:
        self.pattern, self.root = pattern, root

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in `text` (Go's MatchString)."""
        memo: dict[tuple[int, int], frozenset[int]] = {}

        def ends(node: Node, i: int) -> frozenset[int]:
            key = (id(node), i)
            found = memo.get(key)
            if found is None:
                found = memo[key] = frozenset(_ends(node, i))
            return found

        def step(node: Node, starts: set[int] | frozenset[int]) -> set[int]:
            out: set[int] = set()
            for p in starts:
                out |= ends(node, p)
            return out

        def _ends(node: Node, i: int) -> set[int]:
            kind = node[0]
            if kind == "char":
                pred: Pred = node[1]  # type: ignore[assignment]
                return {i + 1} if i < len(text) and pred(text[i]) else set()
            if kind == "cat":
                positions: set[int] = {i}
                for child in node[1]:  # type: ignore[attr-defined]
                    positions = step(child, positions)
                return positions
            if kind == "alt":
                return step_all(node[1], i)  # type: ignore[arg-type]
            if kind == "rep":
                return repeat(node[1], node[2], node[3], i)  # type: ignore[arg-type]
            return {i} if _holds(str(node[1]), text, i) else set()

        def step_all(branches: list[Node], i: int) -> set[int]:
            out: set[int] = set()
            for branch in branches:
                out |= ends(branch, i)
            return out

        def repeat(child: Node, minimum: int, maximum: int | None, i: int) -> set[int]:
            current: set[int] = {i}
            for _ in range(minimum):
                current = step(child, current)
            result, frontier, count = set(current), set(current), minimum
            while frontier and (maximum is None or count < maximum):
                frontier = step(child, frontier) - result
                result |= frontier
                count += 1
            return result

        return any(ends(self.root, i) for i in range(len(text) + 1))


def _holds(kind: str, text: str, i: int) -> bool:
    if kind == "bot":
        return i == 0
    if kind == "eot":
        return i == len(text)
    if kind == "bol":
        return i == 0 or text[i - 1] == "\n"
    if kind == "eol":
        return i == len(text) or text[i] == "\n"
    boundary = (i > 0 and text[i - 1] in _WORD) != (i < len(text) and text[i] in _WORD)
    return boundary if kind == "wb" else not boundary


def compile(pattern: str) -> Regexp:
    """The pattern parsed; RegexpError (with Go's wording) when RE2 would refuse it or it uses what is not
    supported here."""
    if "\\p" in pattern or "\\P" in pattern or "\\Q" in pattern:
        raise RegexpError(f"error parsing regexp: unsupported here (Unicode classes, \\Q...\\E): `{pattern}`")
    return Regexp(pattern, _Parser(pattern).parse())
