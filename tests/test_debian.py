"""The Debian mirror: from apt's sources (both formats), the workspace, or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from crossyard import debian
from crossyard.errors import ConfigurationError

MAIN = "http://mirror.example/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

DEB822 = f"""\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: {MAIN}
Suites: bookworm bookworm-updates
Components: main
Signed-By: {KEYRING}

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: {KEYRING}
"""
SECURITY_ONLY = (
    "deb http://security.example/debian-security bookworm-security main\n"
    "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: trixie-security\n"
    "Components: main\n"
)
NODESOURCE = ("Types: deb\nURIs: https://node.example/node_20.x\nSuites: nodistro\nComponents: main\n"
              "Signed-By: /usr/share/keyrings/nodesource.gpg\n")
CLOUD_SDK = "deb https://cloud.example/apt cloud-sdk-bookworm main\n"


def apt(tmp_path: Path, sources_list: str | None = None, **parts: str) -> Path:
    """An /etc/apt with `sources.list` and `sources.list.d/NAME` files."""
    root = tmp_path / "etc-apt"
    (root / "sources.list.d").mkdir(parents=True)
    if sources_list is not None:
        (root / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (root / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return root


def found(apt_dir: Path, lists_dir: Path | None = None) -> str:
    return debian.mirror({}, environ={}, apt_dir=apt_dir, lists_dir=lists_dir or apt_dir / "no-lists")


def test_deb822_stanzas_with_comments_and_security(tmp_path: Path) -> None:
    assert found(apt(tmp_path, debian_sources=DEB822)) == MAIN


def test_one_line_format_with_options_and_comments(tmp_path: Path) -> None:
    text = (
        "# deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb http://mirror.example/debian-security bookworm-security main contrib\n"
        f"deb [ arch=amd64,arm64 signed-by={KEYRING} ] {MAIN}/ bookworm-updates main non-free-firmware # updates\n"
    )
    assert found(apt(tmp_path, text)) == MAIN


def test_sources_list_comes_before_sources_list_d(tmp_path: Path) -> None:
    other = "deb http://other.example/debian trixie main\n"
    assert found(apt(tmp_path, f"deb {MAIN} bookworm main\n", z_list=other)) == MAIN
    assert found(apt(tmp_path / "2", None, a_list=other, b_list=f"deb {MAIN} bookworm main\n")) \
        == "http://other.example/debian"


@pytest.mark.parametrize("sources", [
    {"debian_sources": SECURITY_ONLY},
    {"nodesource_sources": NODESOURCE, "cloud_list": CLOUD_SDK},
    {"debian_sources": DEB822.replace("Types: deb\n", "Types: deb\nEnabled: no\n", 1) + "\n" + NODESOURCE},
    {"debian_sources": DEB822.replace("Types: deb\n", "Types: deb-src\n", 1)},
    {"docker_list": "deb [signed-by=/etc/apt/keyrings/docker.asc] http://docker.example/debian bookworm main\n"},
    {},
], ids=["security-only", "third-party-only", "disabled", "deb-src-only", "other-keyring", "none"])
def test_no_debian_archive_is_an_error_with_the_fix(tmp_path: Path, sources: dict[str, str]) -> None:
    apt_dir = apt(tmp_path, **sources)
    with pytest.raises(ConfigurationError) as error:
        found(apt_dir)
    message = str(error.value)
    assert str(apt_dir) in message
    assert "[debian] mirror" in message and "CROSSYARD_DEBIAN_MIRROR" in message


def test_third_party_signed_by_its_own_key_is_skipped(tmp_path: Path) -> None:
    third = "deb [signed-by=/usr/share/keyrings/php.gpg] https://php.example/php bookworm main\n"
    assert found(apt(tmp_path, third + f"deb {MAIN} bookworm main\n")) == MAIN


def release(lists: Path, uri_stem: str, suite: str, origin: str) -> None:
    lists.mkdir(exist_ok=True)
    (lists / f"{uri_stem}_dists_{suite}_InRelease").write_text(
        f"-----BEGIN PGP SIGNED MESSAGE-----\n\nOrigin: {origin}\nLabel: {origin}\nSuite: x\n"
    )


def test_release_origin_decides_when_apt_has_fetched_it(tmp_path: Path) -> None:
    """A third-party archive reusing `bookworm main` without Signed-By is told apart by its
    Release file; a Debian mirror confirmed by its Release file wins over an unconfirmed one."""
    lists = tmp_path / "lists"
    text = ("deb https://php.example/php bookworm main\n"
            "deb http://unknown.example/debian trixie main\n"
            "deb http://mirror.example:8080/deb_ian/ bookworm main\n")
    release(lists, "php.example_php", "bookworm", "deb.sury.org")
    release(lists, "mirror.example:8080_deb%5fian", "bookworm", "Debian")
    assert found(apt(tmp_path, text), lists) == "http://mirror.example:8080/deb_ian"


def test_list_names_follow_apt(tmp_path: Path) -> None:
    source = debian.read_sources(apt(tmp_path, "deb http://user:pw@mirror.example/deb~x/ sid main\n"))[0]
    assert debian._list_name(source.uri, source.suite) == "mirror.example_deb%7ex_dists_sid"


def test_environment_wins_over_workspace_over_apt(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, debian_sources=DEB822)
    config = {"debian": {"mirror": "https://ws.example/debian/"}}
    env = {debian.ENV: "http://env.example/debian"}
    assert debian.mirror(config, environ=env, apt_dir=apt_dir) == "http://env.example/debian"
    assert debian.mirror(config, environ={}, apt_dir=apt_dir) == "https://ws.example/debian"
    assert debian.mirror({}, environ={debian.ENV: ""}, apt_dir=apt_dir, lists_dir=tmp_path) == MAIN


@pytest.mark.parametrize(("config", "env", "named"), [
    ({"debian": {"mirror": "mirror.example/debian"}}, {}, "crossyard.toml: [debian] mirror"),
    ({"debian": {"mirror": 3}}, {}, "crossyard.toml: [debian] mirror"),
    ({"debian": {"mirorr": "http://mirror.example/debian"}}, {}, "did you mean `mirror`"),
    ({"debian": "http://mirror.example/debian"}, {}, "must be a table ([debian])"),
    ({}, {debian.ENV: "http://mirror example/debian"}, debian.ENV),
    ({}, {debian.ENV: "ftp://mirror.example/debian"}, debian.ENV),
])
def test_bad_overrides_name_where_they_came_from(tmp_path: Path, config: dict[str, object],
                                                 env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        debian.mirror(config, environ=env, apt_dir=apt(tmp_path, debian_sources=DEB822))
    assert named in str(error.value)


def test_mirror_command(tmp_path: Path) -> None:
    (tmp_path / "crossyard.toml").write_text('[debian]\nmirror = "http://ws.example/debian"\n')
    result = run_cli("-C", str(tmp_path), "toolchains", "mirror", env={debian.ENV: ""})
    assert result.returncode == 0 and result.stdout == "http://ws.example/debian\n", result.stderr
    result = run_cli("-C", str(tmp_path), "toolchains", "mirror", env={debian.ENV: f"{MAIN}/"})
    assert result.stdout == f"{MAIN}\n"
    (tmp_path / "crossyard.toml").write_text('[debian]\nmirror = "nowhere"\n')
    result = run_cli("-C", str(tmp_path), "toolchains", "mirror", env={debian.ENV: ""})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'crossyard.toml'}: [debian] mirror: 'nowhere'" in result.stderr
