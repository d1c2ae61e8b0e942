"""The plan's jobs as Kubernetes Jobs (batch/v1), for clusters whose nodes have no SSH (Talos).

Each job becomes one YAML file: a ConfigMap with the `JobSpec` (`job.json`, its canonical JSON)
and the three scripts, and a Job whose pod runs them in order on a node of the right arch
(`nodeSelector: kubernetes.io/arch`):

1. init container `fetch-inputs` (the oras image): pulls the source and every dependency from
   the registry as OCI artifacts by digest, checks each file against the spec's digest;
2. init container `build` (the toolchain's image, `REGISTRY/crossyard-root/<toolchain>@sha256:…`):
   the spec's steps in the same clean environment a local job gets;
3. container `push-outputs` (the oras image): pushes the outputs as one artifact, tagged by the
   job's input key, in the layout `crossyard publish` uses for binaries.

All data moves through the registry: sources as artifacts written here into `DIR/inputs/` (an OCI
image layout) and copied to `REGISTRY/crossyard-sources` by `DIR/push-inputs.sh`, which also
copies each dependency's artifact from the store to `REGISTRY/<recipe>`. Every image and input
is pinned by digest. A job is rendered once its dependencies are in the store (their digests are
in its key and its spec); the others are listed as waiting "after" them.

Where a job runs: a native or emulated job on a node of the target's arch (Kubernetes runs it
natively there); a cross job on a node of the arch its toolchain runs on — the toolchain root's
arch, else this machine's (whose toolchains the plan probed), or `cross_arch`.

Nothing here talks to an API server: rendering and the scripts are tested here (the scripts
against a real registry), scheduling and image pulls by Kubernetes are not.
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .annotations import (
    ANNOTATION_INPUT_KEY,
    ANNOTATION_PLATFORM,
    ANNOTATION_RECIPE,
    ANNOTATION_SOURCE_DIGEST,
    ANNOTATION_STRATEGY,
    ANNOTATION_TOOLCHAIN,
)
from .errors import ConfigurationError
from .executors.local import commands, job_view, output_path
from .fsutil import atomic_write_text
from .jobspec import JobSpec
from .oci import media
from .oci.image import rfc3339
from .oci.layout import Descriptor, OciLayout
from .plan import Job
from .platforms import Platform
from .project import Project
from .records import BuildRecord
from .reference import HOST_RE, Reference

ORAS: Final = "oras"  # the --image name of the image that runs oras, sh, tar and sha256sum
SOURCES_REPO: Final = "crossyard-sources"
ROOTS_REPO: Final = "crossyard-root"
SOURCE_ARTIFACT_TYPE: Final = "application/vnd.crossyard.source.v1"
SOURCE_FILE: Final = "source.tar"
INPUTS_DIR: Final = "inputs"
PUSH_SCRIPT: Final = "push-inputs.sh"
HEADER_MARK: Final = "a Kubernetes Job rendered by `crossyard nodes k8s-jobs`"
# Inside the pod: the job directory (emptyDir), the ConfigMap, the registry Secret (optional).
JOB_DIR: Final = "/crossyard/job"
SPEC_DIR: Final = "/crossyard/spec"
REGISTRY_DIR: Final = "/crossyard/registry"
_NAME_CHARS: Final = re.compile(r"[^a-z0-9-]+")
_LABEL_CHARS: Final = re.compile(r"[^A-Za-z0-9._-]+")
_PLAIN_KEY: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


@dataclass(frozen=True, kw_only=True)
class K8sJobOptions:
    registry: str  # HOST[:PORT] the cluster pulls from and pushes to
    images: Mapping[str, str]  # toolchain name (or `oras`) → image reference pinned by digest
    namespace: str = "crossyard"
    secret: str = "crossyard-registry"  # ca.crt + config.json (docker login) for oras
    cross_arch: Platform | None = None  # where cross jobs run; None: the toolchain's own arch
    ca_file: str = ""  # the registry's CA on this machine, for push-inputs.sh's default

    def check(self) -> None:
        if not HOST_RE.match(self.registry):
            raise ConfigurationError(f"registry `{self.registry}` is not HOST[:PORT]")
        for what, value in (("--namespace", self.namespace), ("--secret", self.secret)):
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
                raise ConfigurationError(f"{what} {value!r} is not a Kubernetes name (lowercase letters, "
                                         "digits, '-', at most 63)")

    def image(self, name: str) -> str | None:
        """The pinned reference for `name`: `sha256:<hex>` alone means
        REGISTRY/crossyard-root/<name>@sha256:<hex> (`oras`: REGISTRY/crossyard-tools/oras)."""
        given = self.images.get(name)
        if given is None:
            return None
        if given.startswith("sha256:"):
            repo = "crossyard-tools/oras" if name == ORAS else f"{ROOTS_REPO}/{name}"
            given = f"{self.registry}/{repo}@{given}"
        ref = Reference.parse(given, what=f"--image {name}=")
        if ref.digest is None:
            raise ConfigurationError(f"--image {name}={given}: not pinned by digest; give "
                                     f"{given.partition('@')[0]}@sha256:<64 hex> (a tag can move)")
        return given


@dataclass(frozen=True, kw_only=True)
class SourceArtifact:
    """A source tree as an OCI artifact: one layer, its deterministic tar."""

    tree: str  # the source tree's digest (`JobSpec.source`)
    archive: str  # the tar's digest
    manifest: Descriptor

    @property
    def tag(self) -> str:
        return "tree-" + self.tree.removeprefix("sha256:")


@dataclass(frozen=True, kw_only=True)
class Dependency:
    """A dependency's artifact, as the store holds it and `push-inputs.sh` copies it."""

    recipe: str
    manifest: str  # the artifact manifest's digest
    input_key: str


@dataclass(frozen=True, kw_only=True)
class K8sJob:
    id: str
    name: str  # the Job's and ConfigMap's name
    spec: JobSpec
    arch: Platform  # the nodes it may run on
    image: str  # the toolchain's image, pinned
    deps: tuple[Dependency, ...]
    cached: bool  # its output is already in the store (rendering it builds it again)


@dataclass(frozen=True, kw_only=True)
class Waiting:
    id: str
    after: tuple[str, ...]  # the jobs whose outputs it needs first
    reason: str


@dataclass(frozen=True, kw_only=True)
class K8sPlan:
    jobs: tuple[K8sJob, ...]
    waiting: tuple[Waiting, ...]


@dataclass(frozen=True, kw_only=True)
class Written:
    files: tuple[Path, ...]  # one YAML per job, in plan order
    push_script: Path
    sources: tuple[SourceArtifact, ...]
    plan: K8sPlan

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": [{"id": j.id, "name": j.name, "arch": j.arch.goarch, "image": j.image, "file": str(f),
                      "input_key": j.spec.input_key, "cached": j.cached}
                     for j, f in zip(self.plan.jobs, self.files, strict=True)],
            "waiting": [{"id": w.id, "after": list(w.after), "reason": w.reason} for w in self.plan.waiting],
            "push_inputs": str(self.push_script),
        }


def plan_jobs(project: Project, names: Sequence[str], options: K8sJobOptions) -> K8sPlan:
    """The jobs of the plan that can be rendered now (dependencies in the store), and the
    others. Raises `ConfigurationError` naming every image it lacks."""
    options.check()
    graph = project.graph(names)
    project.fetch_sources(graph)
    store = project.store
    cached_keys = store.cached_keys()
    known: dict[str, BuildRecord] = {}  # job id → its artifact in the store
    ready: list[tuple[Job, JobSpec, list[BuildRecord]]] = []
    waiting: list[Waiting] = []
    for job_id in graph.order:
        job = graph.jobs[job_id]
        missing = [d for d in job.deps if d not in known]
        if missing:
            waiting.append(Waiting(id=job_id, after=tuple(missing),
                                   reason="after " + ", ".join(missing) + " (their digests are part of its key)"))
            continue
        deps = [known[d] for d in job.deps]
        key = job.input_key({d: known[d].digests for d in job.deps})
        found = store.find(key, index=cached_keys)
        if found is not None and found.manifest is not None:
            known[job_id] = found
        if job.engine is not None:
            waiting.append(Waiting(id=job_id, after=(), reason="a Dockerfile build needs a Docker engine"))
        else:
            ready.append((job, job.spec(key, deps), deps))
    lacking: dict[str, list[str]] = {}
    for job, spec, _ in ready:
        if options.image(spec.toolchain.name) is None:
            lacking.setdefault(spec.toolchain.name, []).append(job.id)
    if ready and options.image(ORAS) is None:
        lacking[ORAS] = ["every job: fetch-inputs, push-outputs"]
    if lacking:
        raise ConfigurationError(
            "no container image for "
            + "; ".join(f"`{name}` ({', '.join(ids)})" for name, ids in sorted(lacking.items()))
            + f". Give each with --image NAME=sha256:<64 hex> (meaning {options.registry}/{ROOTS_REPO}/NAME@…, "
            f"for oras {options.registry}/crossyard-tools/oras@…) or --image NAME=HOST/REPO@sha256:<64 hex>: "
            "a toolchain's image holds that toolchain at the paths the plan uses; the oras image "
            "needs oras, sh, tar and sha256sum"
        )
    jobs = []
    for job, spec, deps in ready:
        image = options.image(spec.toolchain.name)
        assert image is not None  # checked above
        jobs.append(K8sJob(
            id=job.id, name=job_name(job.recipe.name, job.platform, spec.input_key), spec=spec,
            arch=_arch(spec, options), image=image,
            deps=tuple(Dependency(recipe=d.recipe, manifest=d.manifest.digest, input_key=d.input_key)
                       for d in deps if d.manifest is not None),  # always: `known` holds stored ones
            cached=job.id in known,
        ))
    return K8sPlan(jobs=tuple(jobs), waiting=tuple(waiting))


def _arch(spec: JobSpec, options: K8sJobOptions) -> Platform:
    if spec.toolchain.strategy != "cross":
        return spec.platform
    if options.cross_arch is not None:
        return options.cross_arch
    if spec.toolchain.root_platform:
        return Platform.parse(spec.toolchain.root_platform)
    return Platform.host()


def job_name(recipe: str, platform: Platform, key: str) -> str:
    """`cy-<recipe>-<arch>-<key 10 hex>`: a DNS label (Jobs put their name in a pod label)."""
    tail = f"-{platform.goarch}-{key.removeprefix('sha256:')[:10]}"
    head = _NAME_CHARS.sub("-", recipe.lower()).strip("-")[: 63 - len(tail) - 3].strip("-") or "job"
    return f"cy-{head}{tail}"


def write_jobs(project: Project, plan: K8sPlan, options: K8sJobOptions, out: Path) -> Written:
    """Source artifacts into `out/inputs/`, one YAML per job, `out/push-inputs.sh`; the YAML of
    an earlier render that this one no longer has is removed (`kubectl apply -f DIR` applies
    what the plan is now). A directory holding anything else is refused, before any write."""
    if out.exists() and not out.is_dir():
        raise ConfigurationError(f"-o {out}: not a directory")
    foreign = sorted(p.name for p in out.iterdir() if not _ours(p)) if out.is_dir() else []
    if foreign:
        raise ConfigurationError(
            f"-o {out}: holds {', '.join(foreign[:3])}{' …' if len(foreign) > 3 else ''}, not from "
            "`crossyard nodes k8s-jobs`; give a new or empty directory (or one it wrote before)"
        )
    layout = OciLayout(out / INPUTS_DIR).ensure()
    sources: dict[str, SourceArtifact] = {}
    for job in plan.jobs:
        if job.spec.source not in sources:
            sources[job.spec.source] = _source_artifact(project, layout, job)
    files = []
    for job in plan.jobs:
        path = out / f"{job.name}.yaml"
        atomic_write_text(path, render(job, sources[job.spec.source], options))
        files.append(path)
    for stale in sorted(set(out.glob("cy-*.yaml")) - set(files)):
        stale.unlink()
    script = out / PUSH_SCRIPT
    atomic_write_text(script, push_inputs_script(plan, list(sources.values()), options, project.store.root),
                      mode=0o755)
    return Written(files=tuple(files), push_script=script, sources=tuple(sources.values()), plan=plan)


def _ours(path: Path) -> bool:
    """Something an earlier `write_jobs` left in its directory."""
    if path.name in (INPUTS_DIR, PUSH_SCRIPT):
        return True
    if not (path.name.startswith("cy-") and path.suffix == ".yaml" and path.is_file()):
        return False
    with path.open(errors="replace") as text:
        return text.readline().rstrip().endswith(HEADER_MARK)


def _source_artifact(project: Project, layout: OciLayout, job: K8sJob) -> SourceArtifact:
    # the tar SSH nodes get: the same bytes, the same digest
    from .executors.shipping import source_archive

    recipe = project.catalog.recipes[job.spec.id.partition("@")[0]]
    resolved = project.resolver.resolve(recipe)
    with tempfile.TemporaryDirectory(dir=layout.root, prefix=".source-") as scratch:
        tar = Path(scratch) / SOURCE_FILE
        with tar.open("wb") as out:
            source_archive(resolved, out)
        archive = layout.import_file(tar, media.LAYER_TAR, annotations={media.ANNOTATION_TITLE: SOURCE_FILE})
    config = layout.write_blob(media.EMPTY_JSON, media.EMPTY)
    manifest = layout.write_json({
        "schemaVersion": 2, "mediaType": media.MANIFEST, "artifactType": SOURCE_ARTIFACT_TYPE,
        "config": config.to_json(), "layers": [archive.to_json()],
        "annotations": {ANNOTATION_SOURCE_DIGEST: job.spec.source},
    }, media.MANIFEST, artifact_type=SOURCE_ARTIFACT_TYPE)
    artifact = SourceArtifact(tree=job.spec.source, archive=archive.digest, manifest=manifest)
    tagged = manifest.with_(annotations={media.ANNOTATION_REF_NAME: artifact.tag})
    layout.update_index(lambda entries: [*(e for e in entries if e.digest != manifest.digest), tagged])
    return artifact


# -- the manifests ---------------------------------------------------------------------------


def render(job: K8sJob, source: SourceArtifact, options: K8sJobOptions) -> str:
    """The job's YAML file: a comment saying how to apply it, its ConfigMap, its Job."""
    oras = options.image(ORAS)
    assert oras is not None
    spec = job.spec
    labels = {"app.kubernetes.io/managed-by": "crossyard", "app.kubernetes.io/name": "crossyard-job",
              "crossyard.dev/recipe": _label(spec.id.partition("@")[0]), "crossyard.dev/arch": job.arch.goarch}
    annotations = {"crossyard.dev/job": spec.id, "crossyard.dev/input-key": spec.input_key,
                   "crossyard.dev/toolchain": spec.toolchain.identity,
                   "crossyard.dev/strategy": spec.toolchain.strategy,
                   "crossyard.dev/source": source.tree}
    meta = {"name": job.name, "namespace": options.namespace, "labels": labels, "annotations": annotations}
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
        "data": {"job.json": spec.to_bytes().decode(), "fetch.sh": fetch_script(job, source, options),
                 "build.sh": build_script(spec), "push.sh": push_script(job, options)},
    }
    mounts = [{"name": "job", "mountPath": JOB_DIR}, {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True}]
    registry_mount = {"name": "registry", "mountPath": REGISTRY_DIR, "readOnly": True}
    locked_down = {"allowPrivilegeEscalation": False}

    def container(name: str, image: str, script: str, *, registry: bool) -> dict[str, Any]:
        return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", f"{SPEC_DIR}/{script}"], "workingDir": JOB_DIR,
                "volumeMounts": [*mounts, *([registry_mount] if registry else [])],
                "securityContext": locked_down}

    job_manifest = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
        "spec": {
            # Kubernetes' take on crossyard's rule: a pod lost with its node (drained, evicted,
            # gone) runs again and does not count; a failed compile fails the Job at once.
            "backoffLimit": 2,
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "FailJob", "onExitCodes": {"containerName": "build", "operator": "NotIn",
                                                      "values": [0]}},
            ]},
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"kubernetes.io/arch": job.arch.goarch, "kubernetes.io/os": job.arch.os},
                    "initContainers": [container("fetch-inputs", oras, "fetch.sh", registry=True),
                                       container("build", job.image, "build.sh", registry=False)],
                    "containers": [container("push-outputs", oras, "push.sh", registry=True)],
                    "volumes": [
                        {"name": "job", "emptyDir": {}},
                        {"name": "spec", "configMap": {"name": job.name, "defaultMode": 0o444}},
                        {"name": "registry", "secret": {"secretName": options.secret, "optional": True}},
                    ],
                },
            },
        },
    }
    return _header(job, options) + to_yaml(config_map) + "---\n" + to_yaml(job_manifest)


def _header(job: K8sJob, options: K8sJobOptions) -> str:
    file = f"{job.name}.yaml"
    ns = options.namespace
    out = output_reference(job, options)
    lines = [
        f"{job.spec.id}: {HEADER_MARK}",
        f"(input key {job.spec.input_key}).",
        f"It runs on a linux/{job.arch.goarch} node: fetch-inputs pulls the source and dependencies",
        f"from {options.registry} by digest, build runs the steps in {job.image},",
        f"push-outputs pushes the outputs to {out}.",
        "",
        "Once per directory: push the inputs, create the namespace and the registry secret",
        f"(the CA bundle and a docker config.json with a login for {options.registry}):",
        f"  sh {PUSH_SCRIPT}",
        f"  kubectl create namespace {ns}",
        f"  kubectl -n {ns} create secret generic {options.secret} \\",
        "    --from-file=ca.crt=.crossyard/pki/ca/bundle.crt --from-file=config.json=$HOME/.docker/config.json",
        "Then:",
        f"  kubectl apply -f {file}",
        f"  kubectl -n {ns} wait --for=condition=complete job/{job.name} --timeout=2h",
        f"  kubectl -n {ns} logs job/{job.name} --all-containers",
        f"  oras pull {out}",
    ]
    if job.cached:
        lines.append("Its output is already in crossyard's store: applying it builds it again (a check).")
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def output_reference(job: K8sJob, options: K8sJobOptions) -> str:
    """Where push-outputs puts the outputs: the recipe's repository (as `publish` names it),
    tagged by input key."""
    return f"{options.registry}/{job.spec.id.partition('@')[0]}:key-{job.spec.input_key.removeprefix('sha256:')}"


def _label(value: str) -> str:
    return _LABEL_CHARS.sub("-", value)[:63].strip("-._") or "x"


# -- the scripts ------------------------------------------------------------------------------

_ORAS_AUTH: Final = f"""auth=""
if [ -f {REGISTRY_DIR}/ca.crt ]; then auth="$auth --ca-file {REGISTRY_DIR}/ca.crt"; fi
if [ -f {REGISTRY_DIR}/config.json ]; then auth="$auth --registry-config {REGISTRY_DIR}/config.json"; fi
"""


def fetch_script(job: K8sJob, source: SourceArtifact, options: K8sJobOptions) -> str:
    q = shlex.quote
    spec = job.spec
    lines = [
        f"# {spec.id}: pull the inputs by digest, check each file against the job spec",
        "set -eu", "umask 022", _ORAS_AUTH.rstrip("\n"),
        f"J={JOB_DIR}",
        'mkdir -p "$J/src" "$J/out" "$J/deps" "$J/home" "$J/tmp" "$J/cache" "$J/in"',
        f'oras pull $auth -o "$J/in" {q(f"{options.registry}/{SOURCES_REPO}@{source.manifest.digest}")}',
        f'echo {q(source.archive.removeprefix("sha256:") + "  " + JOB_DIR + "/in/" + SOURCE_FILE)} | sha256sum -c -',
        f'tar -x -m -f "$J/in/{SOURCE_FILE}" -C "$J/src"',
        'rm -rf "$J/in"',
    ]
    for dep in job.deps:
        lines.append(f'oras pull $auth -o "$J/deps/"{q(dep.recipe)} '
                     f'{q(f"{options.registry}/{dep.recipe}@{dep.manifest}")}')
    for item in spec.inputs:
        path = f"{JOB_DIR}/deps/{item.recipe}/{item.name}"
        lines.append(f"echo {q(item.digest.removeprefix('sha256:') + '  ' + path)} | sha256sum -c -")
        lines.append(f"chmod {'0755' if item.mode & 0o111 else '0644'} {q(path)}")
    return "\n".join(lines) + "\n"


def build_script(spec: JobSpec) -> str:
    """The spec's steps as a local job runs them (`executors.local.commands`): each in its
    directory, in the whole clean environment (`env -i`), nothing inherited from the image."""
    q = shlex.quote
    seen, _ = job_view(JOB_DIR, f"{JOB_DIR}/cache", rooted=False)
    steps = commands(spec, seen, None, [])
    lines = [f"# {spec.id}: {len(steps)} step(s) in crossyard's clean build environment",
             f"# toolchain: {spec.toolchain.identity} ({spec.toolchain.strategy})", "set -eu", "umask 022"]
    for step in steps:
        env = " ".join(q(f"{k}={v}") for k, v in sorted(step.env.items()))
        lines.append(f"(cd {q(step.cwd or seen.root)} && exec env -i {env} {' '.join(q(a) for a in step.argv)})")
    return "\n".join(lines) + "\n"


def push_script(job: K8sJob, options: K8sJobOptions) -> str:
    """Each output (a file inside the job directory once symlinks are resolved, as locally),
    pushed as one artifact: one layer per file titled with its name, like the store's."""
    q = shlex.quote
    spec = job.spec
    seen, _ = job_view(JOB_DIR, f"{JOB_DIR}/cache", rooted=False)
    lines = [f"# {spec.id}: push the outputs", "set -eu", _ORAS_AUTH.rstrip("\n"), f"J={JOB_DIR}",
             'rm -rf "$J/push" && mkdir "$J/push"']
    files = []
    for name in sorted(spec.outputs):
        shown, _ = output_path(spec, seen, name)
        lines += [
            f"p=$(realpath {q(shown)}) || {{ echo {q(f'the build did not produce `{name}` ({shown})')} >&2; exit 1; }}",
            f'case "$p" in "$J"/*) ;; *) echo {q(f"output `{name}` ({shown}) resolves to")} "$p, outside the job '
            'directory" >&2; exit 1;; esac',
            f'[ -f "$p" ] || {{ echo {q(f"output `{name}` ({shown}) is not a file")} >&2; exit 1; }}',
            f'cp "$p" "$J/push/"{q(name)}',
        ]
        files.append(q(f"{name}:{media.BINARY_LAYER}"))
    notes = {ANNOTATION_RECIPE: spec.id.partition("@")[0], ANNOTATION_PLATFORM: spec.platform.oci,
             ANNOTATION_INPUT_KEY: spec.input_key, ANNOTATION_TOOLCHAIN: spec.toolchain.identity,
             ANNOTATION_STRATEGY: spec.toolchain.strategy,
             # fixed, so the same outputs make the same manifest
             media.ANNOTATION_CREATED: rfc3339(spec.source_date_epoch)}
    annotate = " ".join(f"--annotation {q(f'{k}={v}')}" for k, v in sorted(notes.items()))
    lines += [
        'cd "$J/push"',
        "sha256sum *",
        f"oras push $auth --artifact-type {media.ARTIFACT_TYPE} {annotate} "
        f"{q(output_reference(job, options))} {' '.join(files)}",
    ]
    return "\n".join(lines) + "\n"


def push_inputs_script(plan: K8sPlan, sources: Sequence[SourceArtifact], options: K8sJobOptions,
                       store: Path) -> str:
    """Copies what the jobs pull into the registry: the sources from `inputs/`, each dependency's
    artifact from the store (by digest; tagged by input key so the registry keeps it)."""
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        f"# Push the inputs of the Jobs in this directory to {options.registry}.",
        "# CROSSYARD_REGISTRY_CA, CROSSYARD_REGISTRY_USERNAME and CROSSYARD_REGISTRY_PASSWORD as for crossyard.",
        "set -eu",
        'cd "$(dirname "$0")"',
        f'ca="${{CROSSYARD_REGISTRY_CA:-{options.ca_file}}}"',
        'set --',
        'if [ -n "$ca" ]; then set -- "$@" --to-ca-file "$ca"; fi',
        'if [ -n "${CROSSYARD_REGISTRY_USERNAME:-}" ]; then',
        '  set -- "$@" --to-username "$CROSSYARD_REGISTRY_USERNAME" --to-password "${CROSSYARD_REGISTRY_PASSWORD:-}"',
        "fi",
    ]
    for source in sorted(sources, key=lambda s: s.tag):
        lines.append(f'oras cp "$@" --from-oci-layout {q(f"{INPUTS_DIR}:{source.tag}")} '
                     f'{q(f"{options.registry}/{SOURCES_REPO}:{source.tag}")}')
    deps = {(d.recipe, d.manifest): d for job in plan.jobs for d in job.deps}
    for (recipe, manifest), dep in sorted(deps.items()):
        tag = "key-" + dep.input_key.removeprefix("sha256:")
        lines.append(f'oras cp "$@" --from-oci-layout {q(f"{store}@{manifest}")} '
                     f'{q(f"{options.registry}/{recipe}:{tag}")}')
    return "\n".join(lines) + "\n"


# -- YAML ---------------------------------------------------------------------------------------


def to_yaml(value: Mapping[str, Any]) -> str:
    """Block-style YAML with sorted keys (deterministic), strings double-quoted (JSON's escapes
    are YAML's), multi-line strings as literal blocks (scripts read as scripts)."""
    return "\n".join(_node(value, 0)) + "\n"


def _node(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        lines: list[str] = []
        for key in sorted(value):
            item = value[key]
            name = key if _PLAIN_KEY.match(key) and key not in ("true", "false", "null", "yes", "no", "on", "off") \
                else json.dumps(key)
            if isinstance(item, (Mapping, list)) and item:
                lines.append(f"{pad}{name}:")
                lines += _node(item, indent + 2)
            elif isinstance(item, str) and _literal_ok(item):
                lines.append(f"{pad}{name}: |{'' if item.endswith(chr(10)) else '-'}")
                lines += [f"{pad}  {line}" if line else "" for line in item.removesuffix("\n").split("\n")]
            else:
                lines.append(f"{pad}{name}: {_scalar(item)}")
        return lines
    lines = []
    for item in value:
        if isinstance(item, (Mapping, list)) and item:
            inner = _node(item, indent + 2)
            lines.append(f"{pad}- {inner[0][indent + 2:]}")
            lines += inner[1:]
        else:
            lines.append(f"{pad}- {_scalar(item)}")
    return lines


def _literal_ok(text: str) -> bool:
    """A string a literal block keeps byte for byte: several lines, at most one final newline,
    no leading space on the first line, printable."""
    return ("\n" in text.removesuffix("\n") and not text.endswith("\n\n") and not text[0].isspace()
            and all(c == "\n" or (c.isprintable() and c != "\r") or c == "\t" for c in text)
            and not any(line != line.rstrip(" ") for line in text.split("\n")))


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(str(value))
