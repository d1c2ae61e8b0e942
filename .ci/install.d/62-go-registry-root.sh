# The registry catalog recipe (recipes/registry/): Debian bookworm's Go with the Go library
# packages docker-registry's Build-Depends name, in a root under /var/cache/crossyard/roots
# (reused when present; from the machine's own mirror, as every root), run with bubblewrap.
crossyard toolchains prepare go-registry
