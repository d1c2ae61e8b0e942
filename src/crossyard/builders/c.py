"""C: compile sources directly, or drive make or cmake, with the platform's cross compiler.

The build directory is mapped away (`-ffile-prefix-map`) so outputs do not depend on where the
job ran; dependencies' outputs are on the include and library paths (`deps/<recipe>`), and their
static libraries are linked.
"""

from __future__ import annotations

from ..build_options import COptions, of_kind
from ..jobspec import Step
from ..templates import expand
from . import BuildInput, BuildScript, template_values


def is_zig(job: BuildInput) -> bool:
    return job.toolchain.command.rsplit("/", 1)[-1] == "zig"


def compiler(job: BuildInput, *, static: bool = False) -> list[str]:
    """The C compiler's argv. zig cc targets every platform by itself; a static binary needs
    musl there (zig links glibc only dynamically), a dynamic one the platform's glibc."""
    if is_zig(job):
        libc = "musl" if static else "gnu"
        return [job.toolchain.command, "cc", "-target", f"{job.platform.uname_m}-linux-{libc}"]
    return [job.toolchain.command]


def archiver(job: BuildInput) -> list[str]:
    if is_zig(job):
        return [job.toolchain.command, "ar"]
    return [f"{job.platform.gnu_triplet}-ar" if job.toolchain.strategy == "cross" else "ar"]


class CBuilder:
    def script(self, job: BuildInput) -> BuildScript:
        options = of_kind(job.options, COptions)
        values = template_values(job)
        cc = compiler(job, static=options.static)
        # zig keeps compiled libc and compiler-rt in its global cache: share it between jobs
        # (the job's HOME is fresh each time, and building them costs seconds per target).
        env = {"ZIG_GLOBAL_CACHE_DIR": f"{job.paths.cache}/zig"} if is_zig(job) else {}
        prefix_map = f"-ffile-prefix-map={job.paths.root}=/build"
        cflags = [prefix_map, *(expand(f, values) for f in options.cflags)]
        dep_dirs = [f"{job.paths.deps}/{name}" for name in sorted(job.deps)]
        dep_libs = [
            f"{job.paths.deps}/{name}/{file}"
            for name in sorted(job.deps)
            for file in job.deps[name]
            if file.endswith(".a")
        ]
        outputs = options.outputs if options.outputs is not None else (job.name,)
        if options.build == "make":
            argv = [
                "make", "-j1", f"CC={' '.join(cc)}", f"AR={' '.join(archiver(job))}",
                f"CFLAGS={' '.join(cflags + ['-I' + d for d in dep_dirs])}",
                *(expand(a, values) for a in options.make_args),
            ]
            return BuildScript(steps=(Step(argv=tuple(argv), cwd=job.paths.src, env=env),),
                               outputs={name.rsplit("/", 1)[-1]: f"{job.paths.src}/{name}" for name in outputs})
        if options.build == "cmake":
            if is_zig(job):
                raise ValueError("build = \"cmake\" needs a gcc-style compiler; zig drives it only "
                                 "through a toolchain file (use gcc, or build = \"make\")")
            build_dir = f"{job.paths.root}/cmake-build"
            configure = [
                "cmake", "-S", job.paths.src, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                f"-DCMAKE_SYSTEM_NAME={job.platform.os.capitalize()}",
                f"-DCMAKE_SYSTEM_PROCESSOR={job.platform.uname_m}",
                f"-DCMAKE_C_COMPILER={cc[0]}",
                f"-DCMAKE_C_FLAGS={' '.join(cflags)}",
                *(expand(a, values) for a in options.cmake_args),
            ]
            cmake_steps = (
                Step(argv=tuple(configure), cwd=job.paths.src),
                Step(argv=("cmake", "--build", build_dir, "-j1"), cwd=job.paths.src),
            )
            return BuildScript(steps=cmake_steps,
                               outputs={name.rsplit("/", 1)[-1]: f"{build_dir}/{name}" for name in outputs})
        output = options.output or job.name
        sources = options.sources
        if not sources:
            raise ValueError("a C recipe without `build` needs `sources`")
        if output.endswith(".a"):
            objects = [f"{job.paths.root}/obj-{i}.o" for i in range(len(sources))]
            steps = [
                Step(argv=(*cc, *cflags, *("-I" + d for d in dep_dirs), "-c", src, "-o", obj),
                     cwd=job.paths.src, env=env)
                for src, obj in zip(sources, objects, strict=True)
            ]
            steps.append(Step(argv=(*archiver(job), "rcsD", f"{job.paths.out}/{output}", *objects),
                              cwd=job.paths.src, env=env))
            headers = {h.rsplit("/", 1)[-1]: f"{job.paths.src}/{h}" for h in options.headers}
            return BuildScript(steps=tuple(steps), outputs={output: f"{job.paths.out}/{output}", **headers})
        argv = [
            *cc, *cflags, *("-I" + d for d in dep_dirs), "-o", f"{job.paths.out}/{output}", *sources, *dep_libs,
            *(expand(f, values) for f in options.ldflags),
            *("-l" + lib for lib in options.libs),
        ]
        if options.static:
            argv.insert(len(cc), "-static")
        return BuildScript(steps=(Step(argv=tuple(argv), cwd=job.paths.src, env=env),),
                           outputs={output: f"{job.paths.out}/{output}"})
