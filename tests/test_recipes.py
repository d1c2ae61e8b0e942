from __future__ import annotations

from pathlib import Path

import pytest

from crossyard.errors import ConfigurationError
from crossyard.platforms import ARM64, RISCV64
from crossyard.recipes import load_catalog, load_recipe

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_example_catalog_loads() -> None:
    catalog = load_catalog(REPO / "recipes")
    assert {"hello-go", "hello-c", "hello-rs", "libgreet"} <= set(catalog.recipes)
    go = catalog.recipes["hello-go"]
    assert go.kind == "go" and go.platforms == (RISCV64, ARM64)
    assert go.test is not None and go.test.run == ("hello-go",)
    assert catalog.recipes["hello-c"].depends == ("libgreet",)


def test_normalized_ignores_spelling_and_order(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    a = load_recipe(write(tmp_path / "a.toml", 'name = "x"\nkind = "c"\nplatforms = ["aarch64"]\n'
                          '[source]\npath = "src"\n[c]\nsources = ["a.c"]\ncflags = ["-O2"]\n'))
    b = load_recipe(write(tmp_path / "b.toml", 'kind = "c"\nname = "x"\nplatforms = ["linux/arm64/v8"]\n'
                          '[c]\ncflags = ["-O2"]\nsources = ["a.c"]\n[source]\npath = "./src/"\n'))
    assert a.normalized(ARM64, tmp_path) == b.normalized(ARM64, tmp_path)


def test_platform_override(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load_recipe(write(tmp_path / "r.toml", 'name = "x"\nkind = "go"\n[source]\npath = "src"\n'
                               '[go]\ntags = ["a"]\n[platform."riscv64".go]\ntags = ["b"]\n'))
    assert recipe.options_for(RISCV64)["tags"] == ["b"]
    assert recipe.options_for(ARM64)["tags"] == ["a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nkind = "go"\nplatfroms = ["riscv64"]\n[source]\npath = "."\n', "did you mean `platforms`"),
        ('name = "x"\nkind = "golang"\n[source]\npath = "."\n', "unknown kind `golang`"),
        ('name = "x"\nkind = "go"\nplatforms = ["mips"]\n[source]\npath = "."\n', "unknown platform `mips`"),
        ('name = "x"\nkind = "go"\n[source]\npath = "nowhere"\n', "does not exist"),
        ('name = "x"\nkind = "go"\nstrategies = ["magic"]\n[source]\npath = "."\n', "unknown strategy"),
        ('name = "x"\nkind = "go"\n[source]\nurl = "https://example.com/x.tgz"\n', "sha256"),
        ('name = "x"\nkind = "go"\n[source]\ngit = "https://example.com/x.git"\ncommit = "main"\n', "40-hex"),
        ('name = "x"\nkind = "go"\n[source]\npath = "."\n[go]\npkg = "."\n', "did you mean `package`"),
    ],
)
def test_bad_recipes(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigurationError) as info:
        load_recipe(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.return_code == 2


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.toml", 'name = "x"\nkind = "go"\nplatforms = [\n')
    with pytest.raises(ConfigurationError) as info:
        load_recipe(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for stem in ("a", "b"):
        write(tmp_path / "recipes" / f"{stem}.toml", 'name = "same"\nkind = "c"\n[source]\npath = "../src"\n')
    with pytest.raises(ConfigurationError, match="already used"):
        load_catalog(tmp_path / "recipes")
