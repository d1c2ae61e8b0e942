# zig, the optional C toolchain (`zig cc` targets every platform): PyPI's ziglang wheel carries
# the official binary; link it onto PATH, where the toolchain probe looks for `zig`.
if ! zig version >/dev/null 2>&1; then
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check ziglang
  ln -sf "$(python3 -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))')/zig" /usr/local/bin/zig
fi
zig version
