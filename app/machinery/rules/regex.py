"""The regular expressions a ``matches`` test may use: a small dialect both engines run fast.

durable-rules compiles expressions into automata of its own and Python checks some
of them again when a rule fires; either can be made to hang by the wrong pattern
(nested quantifiers, a quantified group of alternatives, huge repetitions). This
dialect keeps every expression linear to compile and polynomial of low degree to
match:

- at most ``MAX_LENGTH`` characters: letters, digits, space and ``_ : / @ # & ' , -``
  stand for themselves; ``.`` is any character; ``[...]`` is a class (``^`` first
  negates it; ``a-z`` ranges); ``(...)`` groups alternatives separated by ``|``;
- ``*``, ``+``, ``?``, ``{n}``, ``{m,}`` and ``{m,n}`` (bounds up to ``MAX_BOUND``)
  follow a character, a ``.`` or a class, never a group, and at most
  ``MAX_QUANTIFIERS`` of them appear in one expression;
- no empty group or alternative; ``^`` may open the expression (it always matches
  the whole text anyway); no backslash escapes (write ``[.]`` for a dot).

``problems`` is pure and returns messages, empty for an expression in the dialect.
"""

from __future__ import annotations

import re

MAX_LENGTH = 100
MAX_BOUND = 100
MAX_QUANTIFIERS = 4
LITERALS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _:/@#&',-")
BOUNDS = re.compile(r"\{(\d+)(,(\d*))?\}")


class _Invalid(Exception):
    pass


def problems(expression: str) -> list[str]:
    """What keeps ``expression`` out of the dialect (empty when it is in)."""
    if len(expression) > MAX_LENGTH:
        return [f"is longer than {MAX_LENGTH} characters"]
    try:
        quantifiers = _Parser(expression).parse()
    except _Invalid as exc:
        return [str(exc)]
    if quantifiers > MAX_QUANTIFIERS:
        return [f"has {quantifiers} repetitions (* + ? {{}}); at most {MAX_QUANTIFIERS}"]
    try:
        re.compile(expression)
    except re.error as exc:  # pragma: no cover - the parser accepts a subset of re's syntax
        return [f"is not a regular expression: {exc}"]
    return []


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.at = 0
        self.quantifiers = 0

    def parse(self) -> int:
        if self.text.startswith("^"):
            self.at = 1
        self.alternatives(top=True)
        if self.at != len(self.text):
            raise _Invalid(f"unexpected {self.text[self.at]!r} at position {self.at}")
        return self.quantifiers

    def peek(self) -> str | None:
        return self.text[self.at] if self.at < len(self.text) else None

    def alternatives(self, top: bool) -> None:
        while True:
            if not self.sequence():
                raise _Invalid(f"an empty alternative at position {self.at}")
            if self.peek() == "|":
                self.at += 1
                continue
            if self.peek() == ")" and top:
                raise _Invalid(f"a ')' without its '(' at position {self.at}")
            return

    def sequence(self) -> int:
        items = 0
        while self.peek() not in (None, "|", ")"):
            group = self.atom()
            items += 1
            self.quantifier(after_group=group)
        return items

    def atom(self) -> bool:
        """Read one atom; return whether it was a group."""
        char = self.peek()
        if char == "(":
            self.at += 1
            self.alternatives(top=False)
            if self.peek() != ")":
                raise _Invalid("a '(' is never closed")
            self.at += 1
            return True
        if char == "[":
            self.klass()
            return False
        if char == "." or char in LITERALS:
            self.at += 1
            return False
        if char == "\\":
            raise _Invalid("backslash escapes are not supported; write [.] for a literal dot")
        if char in "*+?{":
            raise _Invalid(f"{char!r} at position {self.at} repeats nothing")
        raise _Invalid(f"{char!r} at position {self.at} is not allowed")

    def klass(self) -> None:
        start = self.at
        self.at += 1
        if self.peek() == "^":
            self.at += 1
        members = 0
        while self.peek() not in (None, "]"):
            char = self.peek()
            if char not in LITERALS and char != ".":
                raise _Invalid(f"{char!r} at position {self.at} is not allowed in a class")
            self.at += 1
            members += 1
        if self.peek() != "]":
            raise _Invalid(f"the class opened at position {start} is never closed")
        if not members:
            raise _Invalid(f"the class at position {start} is empty")
        self.at += 1

    def quantifier(self, after_group: bool) -> None:
        char = self.peek()
        if char not in ("*", "+", "?", "{"):
            return
        if after_group:
            raise _Invalid(
                f"{char!r} at position {self.at} repeats a group; repeat a character,"
                " a '.' or a [class] instead (repeated groups can take exponential time)"
            )
        if char == "{":
            bounds = BOUNDS.match(self.text, self.at)
            if bounds is None:
                raise _Invalid(f"write a repetition as {{n}}, {{m,}} or {{m,n}} at {self.at}")
            low = int(bounds.group(1))
            high = int(bounds.group(3)) if bounds.group(3) else low
            if max(low, high) > MAX_BOUND:
                raise _Invalid(f"repetitions go up to {MAX_BOUND}, not {max(low, high)}")
            if bounds.group(2) and bounds.group(3) and high < low:
                raise _Invalid(f"{{{low},{high}}} repeats fewer times at most than at least")
            self.at = bounds.end()
        else:
            self.at += 1
        self.quantifiers += 1
        if self.peek() in ("*", "+", "?", "{"):
            raise _Invalid(f"{self.peek()!r} at position {self.at} repeats a repetition")
