# Rust cross std for riscv64 and arm64: Debian trixie's rustc with libstd-rust-dev for both, in
# a root under /var/cache/crossyard/roots (reused when present), run with bubblewrap.
crossyard toolchains prepare rust-trixie
