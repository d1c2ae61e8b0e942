# A Docker engine (Debian's docker.io 20.10: classic builder, `platform=` through qemu binfmt) for
# the `dockerfile` recipe kind and the docker-run tests. Only installed: the tests start their own
# private dockerd (tests/helpers/dockerd.py), so no daemon is started or enabled here. A machine
# that already has an engine (docker-ce, moby-engine) keeps it: docker.io would conflict with it.
if ! command -v dockerd >/dev/null 2>&1; then
  apt_install docker.io containerd runc iptables
fi
