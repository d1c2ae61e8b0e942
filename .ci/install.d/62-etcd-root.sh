# Debian trixie's etcd (etcd-server 3.5.16) for the control-plane test (tests/test_kubernetes.py):
# an amd64 trixie root under the roots directory, from the mirror roots are prepared from, the
# test runs /usr/bin/etcd in it with bubblewrap (trixie's binary wants trixie's libc). Reused
# when present; made in a staging directory and renamed, so a failed run leaves nothing half made.
root="${CROSSYARD_ROOTS:-/var/cache/crossyard/roots}/etcd-trixie-amd64"
if [ ! -x "${root}/usr/bin/etcd" ]; then
  mirror="$(crossyard toolchains mirror)"
  staging="${root}.partial"
  rm -rf "${staging}"
  mmdebstrap --variant=apt --architectures=amd64 --include=etcd-server trixie "${staging}" "${mirror}"
  rm -rf "${root}"
  mv "${staging}" "${root}"
fi
