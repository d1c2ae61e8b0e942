# runc for buildkitd's OCI worker (recipes/buildkit/runc.toml): trixie's Go with runc's
# build-dependencies, cross gcc + static libc and libseccomp-dev for riscv64 and arm64
# (multiarch), in a root under /var/cache/crossyard/roots (reused when present), run with
# bubblewrap.
crossyard toolchains prepare go-runc
