# Register qemu-user for riscv64 and aarch64 so foreign binaries (and emulated toolchains) run.
if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
for arch in riscv64 aarch64; do
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-${arch}" ]; then
    update-binfmts --enable "qemu-${arch}"
  fi
done
