# BuildKit (recipes/buildkit/): Debian trixie's Go with docker.io's build-dependencies
# (`apt-get build-dep docker.io`), in a root under /var/cache/crossyard/roots (reused when
# present; from the machine's own mirror, as every root), run with bubblewrap.
crossyard toolchains prepare go-buildkit
