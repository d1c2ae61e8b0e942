# crossyard itself, with what its tests and sessions use (pytest, nox, ruff, mypy).
if ! python3 -m pip --version >/dev/null 2>&1; then
  apt_install python3-pip python3-venv
fi
# Debian's own python3 refuses pip outside a venv (PEP 668). A CI machine runs crossyard and
# nothing else, so install into it (nox makes its own venvs for the sessions anyway).
export PIP_BREAK_SYSTEM_PACKAGES=1
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
