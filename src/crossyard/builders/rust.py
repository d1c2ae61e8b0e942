"""Rust: `cargo build --offline --target <triple>` with the cross linker and remapped paths.

No crates.io here or on many build nodes: std-only crates or vendored sources. Paths of the job
directory and CARGO_HOME are remapped so the binary does not embed where it was built.
"""

from __future__ import annotations

from ..jobspec import Step
from . import BuildInput, BuildScript


class RustBuilder:
    def script(self, job: BuildInput) -> BuildScript:
        options = job.options
        triple = job.platform.rust_triple
        profile = str(options.get("profile", "release"))
        binary = str(options.get("bin", options.get("package", job.name)))
        target_dir = f"{job.paths.root}/target"
        cargo_home = f"{job.paths.home}/.cargo"
        argv = [job.toolchain.command, "build", "--offline", "--locked" if options.get("locked") else "",
                "--target", triple, "--profile", profile, "--bin", binary]
        if "package" in options:
            argv += ["-p", str(options["package"])]
        features = list(options.get("features", []))
        if features:
            argv += ["--features", ",".join(features)]
        rustflags = [
            f"--remap-path-prefix={job.paths.src}=/build/{job.name}",
            f"--remap-path-prefix={cargo_home}=/cargo",
            f"--remap-path-prefix={job.paths.root}=/build",
        ]
        env = {
            "CARGO_HOME": cargo_home,
            "CARGO_TARGET_DIR": target_dir,
            "CARGO_INCREMENTAL": "0",
            "CARGO_NET_OFFLINE": "true",
            "RUSTFLAGS": " ".join(rustflags),
            **{k: str(v) for k, v in options.get("env", {}).items()},
        }
        if job.toolchain.linker:
            env[f"CARGO_TARGET_{triple.upper().replace('-', '_')}_LINKER"] = job.toolchain.linker
        out_dir = "release" if profile == "release" else "debug" if profile == "dev" else profile
        return BuildScript(
            steps=(Step(argv=tuple(a for a in argv if a), cwd=job.paths.src, env=env),),
            outputs={binary: f"{target_dir}/{triple}/{out_dir}/{binary}"},
        )
