"""Filling `{variables}` into a text so that a missing value leaves no gap (U5).

"Hallo {name}, vielen Dank" with no name becomes "Hallo, vielen Dank", never
"Hallo , vielen Dank"; a variable that opens the text takes its following comma along.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_LEADING_PUNCT = re.compile(r"^[ \t]*[,;:]?[ \t]*")


def fill(text: str, pattern: re.Pattern[str], value: Callable[[re.Match[str]], str | None]) -> str:
    """Replace each match of `pattern` by `value(match)`; None leaves the match as it is.

    An empty value also removes the spaces before it; at the very start of the text (or
    of a line) it removes the punctuation and spaces after it instead.
    """
    out: list[str] = []
    pos = 0
    skip_after = False
    for m in pattern.finditer(text):
        chunk = text[pos : m.start()]
        if skip_after:
            chunk = _LEADING_PUNCT.sub("", chunk, count=1)
            skip_after = False
        filled = value(m)
        if filled is None:
            out.append(chunk + m.group(0))
        elif filled:
            out.append(chunk + filled)
        else:
            stripped = chunk.rstrip(" \t")
            before = "".join(out) + stripped
            if not before or before.endswith("\n"):
                skip_after = True
            out.append(stripped)
        pos = m.end()
    rest = text[pos:]
    if skip_after:
        rest = _LEADING_PUNCT.sub("", rest, count=1)
    out.append(rest)
    return "".join(out)
