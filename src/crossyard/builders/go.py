"""Go: `go build` with the flags that make it reproducible across hosts.

CGO off unless the recipe asks (cgo leaks the build path through the linker, golang/go#77086),
`-trimpath -buildvcs=false -ldflags=-buildid=`, no network (GOPROXY=off: vendor or std only).
"""

from __future__ import annotations

from ..jobspec import Step
from . import BuildInput, BuildScript, expand


class GoBuilder:
    def script(self, job: BuildInput) -> BuildScript:
        options = job.options
        output = str(options.get("output", job.name))
        ldflags = " ".join(["-buildid=", *(expand(f, job) for f in options.get("ldflags", []))])
        argv = [job.toolchain.command, "build", "-trimpath", "-buildvcs=false", f"-ldflags={ldflags}"]
        tags = list(options.get("tags", []))
        if tags:
            argv.append("-tags=" + ",".join(tags))
        argv += ["-o", f"{job.paths.out}/{output}", str(options.get("package", "."))]
        cgo = bool(options.get("cgo", False))
        env = {
            "GOOS": job.platform.os,
            "GOARCH": job.platform.goarch,
            "CGO_ENABLED": "1" if cgo else "0",
            "GOCACHE": f"{job.paths.cache}/go-build",
            "GOPATH": f"{job.paths.home}/go",
            "GOMODCACHE": f"{job.paths.cache}/gomod",
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",
            "GOTELEMETRY": "off",
            **{k: expand(str(v), job) for k, v in options.get("env", {}).items()},
        }
        if cgo:
            env["CC"] = f"{job.platform.gnu_triplet}-gcc"
        env = {k: v for k, v in env.items() if v}
        return BuildScript(
            steps=(Step(argv=tuple(argv), cwd=job.paths.src, env=env),),
            outputs={output: f"{job.paths.out}/{output}"},
        )
