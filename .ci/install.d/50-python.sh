# crossyard itself, with what its tests and sessions use.
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
