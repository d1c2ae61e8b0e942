# Strategy `emulated`: a riscv64 Debian trixie root with Go, run under qemu-user binfmt.
crossyard toolchains prepare go-emulated-riscv64
# The same Go release (trixie's golang-go) for amd64, run with bubblewrap: the cross half of the
# test that an emulated and a cross build share one input key and one output.
crossyard toolchains prepare go-trixie
# The same for arm64: `repro check --vary emulated` rebuilds hello-go for arm64 with it.
crossyard toolchains prepare go-emulated-arm64
# trixie's Go with `apt-get build-dep kubernetes` (Debian's golang-k8s-*-dev in /usr/share/gocode):
# what recipes/kubernetes/kubectl.toml (1.32.3, a +ds tarball without vendor/) builds against.
crossyard toolchains prepare go-k8s
