"""Go: `go build` with the flags that make it reproducible across hosts.

CGO off unless the recipe asks (cgo leaks the build path through the linker, golang/go#77086),
`-trimpath -buildvcs=false -ldflags=-buildid=`, no network (GOPROXY=off: vendor or std only).
"""

from __future__ import annotations

from ..build_options import GoOptions, of_kind
from ..jobspec import Step
from ..templates import expand
from . import BuildInput, BuildScript, template_values


class GoBuilder:
    def script(self, job: BuildInput) -> BuildScript:
        options = of_kind(job.options, GoOptions)
        values = template_values(job)
        output = options.output or job.name
        ldflags = " ".join(["-buildid=", *(expand(f, values) for f in options.ldflags)])
        argv = [job.toolchain.command, "build", "-trimpath", "-buildvcs=false", f"-ldflags={ldflags}"]
        if options.tags:
            argv.append("-tags=" + ",".join(options.tags))
        argv += ["-o", f"{job.paths.out}/{output}", options.package]
        env = {
            "GOOS": job.platform.os,
            "GOARCH": job.platform.goarch,
            "CGO_ENABLED": "1" if options.cgo else "0",
            "GOCACHE": f"{job.paths.cache}/go-build",
            "GOPATH": f"{job.paths.home}/go",
            "GOMODCACHE": f"{job.paths.cache}/gomod",
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",
            "GOTELEMETRY": "off",
            **{k: expand(v, values) for k, v in options.env},
        }
        if options.cgo:
            env["CC"] = f"{job.platform.gnu_triplet}-gcc"
        env = {k: v for k, v in env.items() if v}
        return BuildScript(
            steps=(Step(argv=tuple(argv), cwd=job.paths.src, env=env),),
            outputs={output: f"{job.paths.out}/{output}"},
        )
