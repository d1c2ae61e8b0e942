"""Templates: the `{name}` placeholders in recipe options and toolchain definitions.

One grammar for both: `{name}` stands for a value, `{{` and `}}` are literal braces, and nothing
else is (no format specs, no positions, no lone brace). Every template is checked when its file
loads (`check`), against the placeholders that will be filled in; a typo is a message naming the
file, table and key, never a string that passes through literally or a KeyError at build time.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Collection, Mapping
from typing import Final

from .errors import ConfigurationError, suggest
from .platforms import Platform

# What `{…}` in a recipe's build options stands for; `deps` and `out` are the job's directories
# (a Makefile can be handed `LIBS={deps}/libgreet/libgreet.a`), so they exist only where the
# job has a directory: not in a `dockerfile` recipe, whose build runs on an engine.
RECIPE_PLACEHOLDERS: Final = (
    "name", "version", "commit", "source_date_epoch", "build_date", "goarch", "architecture",
    "gnu_triplet", "rust_triple", "platform", "deps", "out",
)
JOB_DIRECTORIES: Final = ("deps", "out")

# `{{`, `}}`, a placeholder, or a brace on its own (an error).
_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(ValueError):
    """A malformed template, or one naming a value the caller did not give."""


def _pieces(template: str) -> list[tuple[str, bool]]:
    """The template as (text, is_placeholder) pieces; TemplateError if it is malformed."""
    pieces: list[tuple[str, bool]] = []
    position = 0
    for match in _TOKEN.finditer(template):
        pieces.append((template[position:match.start()], False))
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append((token[0], False))
        elif match.group(1) is not None:
            pieces.append((match.group(1), True))
        else:
            raise TemplateError(f"a lone `{token}` at character {match.start() + 1}")
        position = match.end()
    pieces.append((template[position:], False))
    return pieces


def placeholders(template: str) -> set[str]:
    """The names a template uses; TemplateError if it is malformed."""
    return {text for text, is_placeholder in _pieces(template) if is_placeholder}


def check(template: str, known: Collection[str], *, where: str) -> None:
    """ConfigurationError unless `template` is well formed and uses only `known` placeholders.
    `where` names the file, table and key, e.g. "recipes/x.toml: [go] `ldflags`"."""
    try:
        used = placeholders(template)
    except TemplateError as error:
        raise ConfigurationError(
            f"{where}: {template!r} is not a valid template ({error}); write a literal brace as {{{{ or }}}}"
        ) from None
    unknown = sorted(used - set(known))
    if unknown:
        raise ConfigurationError(
            f"{where} uses unknown placeholder {{{unknown[0]}}}{suggest(unknown[0], known)}; "
            f"known: {', '.join('{' + k + '}' for k in known)}"
        )


def expand(template: str, values: Mapping[str, str]) -> str:
    """`template` with each placeholder replaced by its value. Strict: a placeholder without a
    value is a TemplateError (templates are checked at load, so that is a caller's omission)."""
    out: list[str] = []
    for text, is_placeholder in _pieces(template):
        if not is_placeholder:
            out.append(text)
        elif text in values:
            out.append(values[text])
        else:
            raise TemplateError(f"{template!r}: no value for {{{text}}}")
    return "".join(out)


def recipe_values(*, name: str, version: str, commit: str | None, platform: Platform,
                  source_date_epoch: int) -> dict[str, str]:
    """The values of RECIPE_PLACEHOLDERS but the job's directories (the caller adds those);
    `{commit}` only when the source has one (a recipe using it without one fails at load)."""
    date = datetime.datetime.fromtimestamp(source_date_epoch, datetime.UTC)
    values = {
        "name": name,
        "version": version,
        "source_date_epoch": str(source_date_epoch),
        "build_date": date.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "goarch": platform.goarch,
        "architecture": platform.architecture,
        "gnu_triplet": platform.gnu_triplet,
        "rust_triple": platform.rust_triple,
        "platform": platform.oci,
    }
    if commit is not None:
        values["commit"] = commit
    return values
