"""crossyard.reference: the one image-reference parser, against the distribution grammar."""

from __future__ import annotations

import pytest

from crossyard.errors import ConfigurationError
from crossyard.reference import FORM, Reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag", "digest"),
    [
        ("hello", None, "hello", None, None),
        ("library/hello:1.0", None, "library/hello", "1.0", None),  # no `.`/`:`: not a host
        ("localhost/x", "localhost", "x", None, None),
        ("localhost:5000/x:v1", "localhost:5000", "x", "v1", None),
        ("reg.example:5000/team/app:1.2.3", "reg.example:5000", "team/app", "1.2.3", None),
        ("reg.example:5000/team/app", "reg.example:5000", "team/app", None, None),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", None, None),
        ("[::1]:5000/a", "[::1]:5000", "a", None, None),
        (f"reg.example/app@{DIGEST}", "reg.example", "app", None, DIGEST),
        (f"reg.example/app:1@{DIGEST}", "reg.example", "app", "1", DIGEST),
        ("a__b-c---d/f_g.h:_T.a-g", None, "a__b-c---d/f_g.h", "_T.a-g", None),
        ("Reg.Example/app", "Reg.Example", "app", None, None),  # a host is not case-folded
    ],
)
def test_parses(text: str, host: str | None, repository: str, tag: str | None, digest: str | None) -> None:
    ref = Reference.parse(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repository, tag, digest)
    assert str(ref) == text  # what is parsed prints back as written


def test_default_host_and_what_a_registry_is_asked_for() -> None:
    assert Reference.parse("app", default_host="reg:5000").name == "reg:5000/app"
    assert Reference.parse("other.example/app", default_host="reg:5000").host == "other.example"
    assert Reference.parse("app").ref == "latest"
    assert Reference.parse("app:2").ref == "2"
    assert Reference.parse(f"app:2@{DIGEST}").ref == DIGEST


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "image reference is empty"),
        ("   ", "image reference is empty"),
        ("Hello", "repository `Hello`: uppercase letters are not allowed"),
        ("reg.example/Team/app", "uppercase letters are not allowed"),
        ("library/Hello:1", "uppercase"),
        ("reg.example:5000/", "no repository"),
        ("a--/b", "components are lowercase letters and digits"),
        ("a//b", "components are lowercase"),
        ("-a", "components are lowercase"),
        ("a:", "tag `` is not letters"),
        ("a:.x", "tag `.x` is not letters"),
        ("a:" + "t" * 129, "tag `"),
        ("a@sha256:12", "`sha256:12` is not a digest"),
        ("a@md5:" + "0" * 32, "is not a digest"),
        (f"a@{DIGEST.upper()}", "is not a digest"),
        ("a@", "`` is not a digest"),
        ("bad_host.example/a", "host `bad_host.example` is not HOST[:PORT]"),
        ("reg.example:port/a", "host `reg.example:port`"),
        ("reg.example/" + "a" * 250, "longer than 255"),
        ("a b", "components are lowercase"),
    ],
)
def test_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Reference.parse(text, what="image reference")
    text_of = str(info.value)
    assert message in text_of
    assert text_of.endswith(f"expected {FORM}")  # the form to write instead
    assert "\n" not in text_of
    if text.strip():
        assert f"`{text}`" in text_of  # names what was given


def test_what_starts_the_message() -> None:
    with pytest.raises(ConfigurationError, match=r"^recipes/x\.toml: \[image\] base `A/b`"):
        Reference.parse("A/b", what="recipes/x.toml: [image] base")
