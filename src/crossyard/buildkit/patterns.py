"""Path patterns as BuildKit's filesync applies them (moby/patternmatcher, used by fsutil's
FilterFS): `.dockerignore` lines as exclude patterns, the Dockerfile's name as an include.

A pattern is matched against a slash-separated path relative to the directory: `*` and `?` stay
inside one path element, `**` crosses elements, `[...]` is a class, `\\` escapes. A pattern that
matches a directory matches everything under it. Patterns are read in order; one starting with
`!` is an exception: the last pattern that matches decides.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ..errors import ConfigurationError


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]
    elements: int  # path elements the pattern spans (a `**` pattern can match deeper paths)
    deep: bool  # it has `**`

    def matches(self, path: str) -> bool:
        if self.regex.fullmatch(path):
            return True
        # a match on a parent directory of the path matches the path too
        parts = path.split("/")
        if self.deep:
            return any(self.regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts)))
        return len(parts) > self.elements and bool(self.regex.fullmatch("/".join(parts[: self.elements])))


def _clean(text: str) -> str:
    cleaned = posixpath.normpath(text.strip())
    return cleaned.lstrip("/") or "."


def _regex(pattern: str, where: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/`: any number of leading elements, none included
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ConfigurationError(f"{where}: pattern {pattern!r} has an unclosed '[': close it or escape it as \\[")
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    try:
        return re.compile("".join(out))
    except re.error as error:
        raise ConfigurationError(f"{where}: pattern {pattern!r} is not valid ({error})") from None


def compile_patterns(lines: list[str] | tuple[str, ...], where: str) -> tuple[Pattern, ...]:
    """The patterns in `lines` (blank lines and `#` comments skipped, as in .dockerignore)."""
    patterns = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        exclusion = text.startswith("!")
        body = _clean(text[1:] if exclusion else text)
        patterns.append(Pattern(text=text, exclusion=exclusion, regex=_regex(body, where),
                                elements=len(body.split("/")), deep="**" in body))
    return tuple(patterns)


def matches(patterns: tuple[Pattern, ...], path: str) -> bool:
    """Whether the patterns, in order, leave `path` matched."""
    matched = False
    for pattern in patterns:
        if pattern.matches(path):
            matched = not pattern.exclusion
    return matched
