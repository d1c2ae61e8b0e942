"""Go: `go build` with the flags that make it reproducible across hosts.

CGO off unless the recipe asks (cgo leaks the build path through the linker, golang/go#77086),
`-trimpath -buildvcs=false -ldflags=-buildid=`, no network (GOPROXY=off: vendor or std only).

Module mode builds the source where it is. GOPATH mode (`gopath = true`, as Debian builds Go and
as Kubernetes before modules built) first moves the source to `{root}/gopath/src/<import_path>`
(leaving `{src}` a symlink to it) and builds there with GO111MODULE=off, so imports resolve
through GOPATH and the tree's vendor/; a toolchain whose root provides Go library packages
(Debian's golang-*-dev in /usr/share/gocode: its definition's `gopath`) adds them after it.
A tree of several projects (`gopath_dirs`, as Debian's docker.io carries buildkit/, engine/,
cli/) has each of those directories moved to its import path instead (and `{src}/<dir>` left a
symlink to it); the build runs in `import_path`'s.
"""

from __future__ import annotations

import posixpath

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
        }
        cwd = job.paths.src
        setup: tuple[Step, ...] = ()
        if options.gopath:
            assert options.import_path is not None  # checked when the recipe loads
            gopath = f"{job.paths.root}/gopath"
            cwd = f"{gopath}/src/{options.import_path}"
            # Moved, not linked: Go does not follow a symlink out of GOPATH/src reliably, and a
            # moved tree's paths are the ones -trimpath rewrites.
            places = [(f"{job.paths.src}/{d}", f"{gopath}/src/{p}") for p, d in options.gopath_dirs]
            setup = tuple(
                step for there, here in places or [(job.paths.src, cwd)] for step in (
                    Step(argv=("mkdir", "-p", posixpath.dirname(here)), cwd=job.paths.root),
                    Step(argv=("mv", there, here), cwd=job.paths.root),
                    Step(argv=("ln", "-s", here, there), cwd=job.paths.root),
                )
            )
            env["GOPATH"] = ":".join(p for p in (gopath, job.toolchain.gopath) if p)
            env["GO111MODULE"] = "off"
            env.pop("GOMODCACHE")
        env.update({k: expand(v, values) for k, v in options.env})
        if options.cgo:
            env["CC"] = f"{job.platform.gnu_triplet}-gcc"
        env = {k: v for k, v in env.items() if v}
        return BuildScript(
            steps=(Step(argv=tuple(argv), cwd=cwd, env=env),),
            outputs={output: f"{job.paths.out}/{output}"},
            setup=setup,
        )
