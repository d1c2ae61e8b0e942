# Base packages and the cross toolchains the foundation's tests use.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed" || missing+=("${pkg}")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ -z "${CROSSYARD_APT_UPDATED:-}" ]; then
      apt-get update -q || true   # third-party lists on some images are unreachable; Debian's are what matter
      export CROSSYARD_APT_UPDATED=1
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}
apt_install ca-certificates git file mount make cmake golang-go gcc libc6-dev \
  gcc-riscv64-linux-gnu libc6-dev-riscv64-cross gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
  qemu-user-static binfmt-support mmdebstrap arch-test bubblewrap
# the layer benchmark's contenders and its memory meter (benchmarks/bench_layer.py)
apt_install pigz time
# headless Chromium: the run report's test renders report.html in a real browser
apt_install chromium
# Debian source packages as recipe sources: signature checks, unpacking, workspace patches
apt_install gpgv debian-archive-keyring dpkg-dev patch xz-utils
# `repro check`: diffoscope's HTML diff of a mismatch. diffoscope-minimal, not `diffoscope`: with
# --no-install-recommends they install the same program (`diffoscope` is an empty metapackage
# whose only job is to recommend ~80 format tools, ghc and a JDK among them); binutils-multiarch
# lets its readelf/objdump read riscv64 and arm64 sections, not only the host's
apt_install diffoscope-minimal binutils-multiarch
# `repro check`'s time and locale variations shift TZ (Etc/GMT+12, Etc/GMT-14), and its
# explanations read each build's clock in its zone: without the zone files both are UTC
# (a fresh root lacks tzdata; the timestamp-by-zone test caught it)
apt_install tzdata
# `repro check`'s locale variation runs builds under fr_CH.UTF-8 (as reprotest does): without
# that locale generated, glibc falls back to C and the variation changes nothing (sort order,
# number formats, messages stay the control's). locale-gen only when it is missing.
apt_install locales
if ! locale -a 2>/dev/null | grep -qx 'fr_CH.utf8'; then
  sed -i 's/^# *\(fr_CH.UTF-8 UTF-8\)/\1/' /etc/locale.gen
  grep -qx 'fr_CH.UTF-8 UTF-8' /etc/locale.gen || echo 'fr_CH.UTF-8 UTF-8' >> /etc/locale.gen
  locale-gen
fi
