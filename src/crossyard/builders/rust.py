"""Rust: `cargo build --offline --target <triple>` with the cross linker and remapped paths.

A native or emulated toolchain (rust-emulated-riscv64: that architecture's rustc under qemu)
gets the same command: `--target` is then its own triple, which keeps the output under
`target/<triple>/` and the build scripts out of RUSTFLAGS as in a cross build; no linker is set,
so cargo links with the root's `cc`. What that links must match the cross sysroot's bytes: the
toolchain definition sees to it (toolchains/rust.toml).

No crates.io here or on many build nodes: std-only crates or vendored sources. Paths of the job
directory and CARGO_HOME are remapped so the binary does not embed where it was built.
"""

from __future__ import annotations

from ..build_options import RustOptions, of_kind
from ..jobspec import Step
from ..templates import expand
from . import BuildInput, BuildScript, template_values


class RustBuilder:
    def script(self, job: BuildInput) -> BuildScript:
        options = of_kind(job.options, RustOptions)
        values = template_values(job)
        triple = job.platform.rust_triple
        profile = options.profile
        binary = options.bin or options.package or job.name
        target_dir = f"{job.paths.root}/target"
        cargo_home = f"{job.paths.home}/.cargo"
        argv = [job.toolchain.command, "build", "--offline", "--locked" if options.locked else "",
                "--target", triple, "--profile", profile, "--bin", binary]
        if options.package:
            argv += ["-p", options.package]
        if options.features:
            argv += ["--features", ",".join(options.features)]
        rustflags = [
            f"--remap-path-prefix={job.paths.src}=/build/{job.name}",
            f"--remap-path-prefix={cargo_home}=/cargo",
            f"--remap-path-prefix={job.paths.root}=/build",
        ]
        if options.static:
            # RUSTFLAGS overrides any rustflags of the crate's .cargo/config.toml, so the
            # recipe says it here: glibc linked in, nothing for an image's base to provide.
            rustflags.append("-Ctarget-feature=+crt-static")
        env = {
            "CARGO_HOME": cargo_home,
            "CARGO_TARGET_DIR": target_dir,
            "CARGO_INCREMENTAL": "0",
            "CARGO_NET_OFFLINE": "true",
            "RUSTFLAGS": " ".join(rustflags),
            **{k: expand(v, values) for k, v in options.env},
        }
        if job.toolchain.linker:
            env[f"CARGO_TARGET_{triple.upper().replace('-', '_')}_LINKER"] = job.toolchain.linker
        out_dir = "release" if profile == "release" else "debug" if profile == "dev" else profile
        return BuildScript(
            steps=(Step(argv=tuple(a for a in argv if a), cwd=job.paths.src, env=env),),
            outputs={binary: f"{target_dir}/{triple}/{out_dir}/{binary}"},
        )
