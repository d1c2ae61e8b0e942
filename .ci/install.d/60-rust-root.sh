# Rust cross std for riscv64 and arm64: Debian trixie's rustc with libstd-rust-dev for both, in
# a root under /var/cache/crossyard/roots (reused when present), run with bubblewrap.
crossyard toolchains prepare rust-trixie
# Strategy `emulated`: the same rustc in a riscv64 and an arm64 trixie root, run under qemu-user
# binfmt (10-binfmt.sh); `repro check --vary emulated` rebuilds Rust recipes with them.
crossyard toolchains prepare rust-emulated-riscv64
crossyard toolchains prepare rust-emulated-arm64
