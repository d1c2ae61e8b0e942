# Strategy `emulated`: a riscv64 Debian trixie root with Go, run under qemu-user binfmt.
crossyard toolchains prepare go-emulated-riscv64
