"""The filesync sender's walk and patterns, without a daemon (test_buildkit_session.py checks
them against buildctl through a real buildkitd): the order fsutil's receiver insists on, Go's
FileMode bits, .dockerignore semantics."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crossyard.buildkit.filesync import (
    GO_DIR,
    GO_SETUID,
    GO_SYMLINK,
    Filter,
    decode_metadata,
    go_mode,
    walk,
)
from crossyard.buildkit.patterns import compile_patterns, matches
from crossyard.errors import ConfigurationError


@pytest.mark.parametrize(("patterns", "path", "expected"), [
    (["*.log"], "a.log", True),
    (["*.log"], "dir/a.log", False),  # `*` stays in one element
    (["**/*.log"], "dir/sub/a.log", True),
    (["**/*.log"], "a.log", True),
    (["secret"], "secret/key", True),  # a matched directory matches what it holds
    (["*.log", "!keep.log"], "keep.log", False),
    (["*.log", "!keep.log"], "drop.log", True),
    (["/build/"], "build/out", True),  # leading and trailing slashes are cleaned
    (["a?c"], "abc", True),
    (["a?c"], "a/c", False),
    (["[ab]x"], "bx", True),
    (["[!ab]x"], "cx", True),
    (["\\*x"], "*x", True),
    (["# comment", ""], "# comment", False),
])
def test_patterns_follow_dockerignore(patterns: list[str], path: str, expected: bool) -> None:
    assert matches(compile_patterns(patterns, "test"), path) is expected


def test_an_unclosed_class_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"unclosed '\['"):
        compile_patterns(["[ab"], ".dockerignore")


def test_go_file_modes() -> None:
    assert go_mode(stat.S_IFDIR | 0o755) == GO_DIR | 0o755
    assert go_mode(stat.S_IFLNK | 0o777) == GO_SYMLINK | 0o777
    assert go_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == GO_SETUID | 0o755


def test_walk_order_parents_first_and_filters(tmp_path: Path) -> None:
    for name in ("b/z", "a.txt", "a/y", "a/x/deep", "skip/me"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    os.link(tmp_path / "a.txt", tmp_path / "b" / "hard")
    everything = [e.path for e in walk(tmp_path)]
    # depth first, names sorted bytewise: "a" before "a.txt", a directory before what it holds
    assert everything == ["a", "a/x", "a/x/deep", "a/y", "a.txt", "b", "b/hard", "b/z", "skip", "skip/me"]
    [hard] = [e for e in walk(tmp_path) if e.path == "b/hard"]
    assert hard.linkname == "a.txt" and hard.size == 0
    only_deep = Filter(includes=compile_patterns(["a/x/deep"], "t"))
    # an included file brings its parents, which the patterns did not include
    assert [e.path for e in walk(tmp_path, only_deep)] == ["a", "a/x", "a/x/deep"]
    no_skip = Filter(excludes=compile_patterns(["skip", "a/*"], "t"))
    assert [e.path for e in walk(tmp_path, no_skip)] == ["a", "a.txt", "b", "b/hard", "b/z"]
    # the hard link's first name excluded: the second travels as a file of its own
    [alone] = [e for e in walk(tmp_path, Filter(excludes=compile_patterns(["a.txt"], "t"))) if e.path == "b/hard"]
    assert alone.linkname == "" and alone.size == len("a.txt")


def test_metadata_values_are_decoded_where_marked() -> None:
    pairs = [("include-patterns", "a%2Cb"), ("include-patterns-encoded", "1"), ("dir-name", "context")]
    assert decode_metadata(pairs) == {"include-patterns": ["a,b"], "include-patterns-encoded": ["1"],
                                      "dir-name": ["context"]}
