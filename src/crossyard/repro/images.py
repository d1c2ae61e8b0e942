"""Images in `repro check`: each selected image recipe re-assembled, by the build's own
`Assembler`, from the artifacts rebuilt under each variation, and held against the control's
assembly and `crossyard.lock` like an artifact.

A column (the control or a variation) assembles every image into an OCI layout of its own under
`.crossyard/repro/<id>/images/<column>/`, never into the store: an image whose base is another
image recipe finds that base in the same layout. Columns whose rebuilt artifacts are the same
files (the local variations, when one build with all of them at once was identical) share one
assembly; the control's is always a separate one, so an assembler that is not deterministic
shows too.

An image gives one row per platform (its manifest digest) and one row `index` (the index
digest). Each compared thing is a small layout view (`_view`): its index.json is the image's
index, or one platform's manifest alone, and its blobs are the column's, so `explain_trees`
walks manifest, config and layers down into the differing file of the layer, and names the
cause with the variant of the artifact build that made it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import CrossyardError
from ..fsutil import atomic_write_text
from ..images.assemble import Assembler, BuiltImage
from ..images.assembly_plan import ImageJob
from ..lock import ImageLockEntry, Lock
from ..oci.layout import Descriptor, OciLayout
from ..platforms import platform_label
from ..records import BuildRecord, OutputFile
from ..store import Store
from .check import (
    DIFFERS,
    FAILED,
    IDENTICAL,
    LOCK,
    NOT_REBUILT,
    Build,
    Cell,
    Checker,
    Row,
    _json,
    causes_first,
)
from .explain import Explanation, Variant, explain_trees

INDEX = "index"  # the row of an image's index digest (its platform column)


def image_rows(checker: Checker, jobs: Sequence[ImageJob], builds: Mapping[str, Mapping[str, Build]],
               lock: Lock | None) -> list[Row]:
    columns = ("control", *checker.variations)
    done: dict[str, dict[str, Build]] = {}  # row id → column → build
    shared: dict[tuple[Any, ...], str] = {}  # the rebuilt files a column assembles from → column
    for column in columns:
        inputs = _inputs(jobs, builds, column)
        # shared only by columns whose rebuilds all exist (two not rebuilt differ in their reasons)
        signature = tuple(sorted((k, tuple(sorted((n, str(p)) for n, p in b.files.items())))
                                 for k, b in inputs.items() if b.status == "built"))
        complete = all(b.status == "built" for b in inputs.values())
        first = shared.get(signature) if complete else None
        if first is not None:
            for by_column in done.values():
                by_column[column] = replace(by_column[first], variation=column, reason=(
                    f"assembled once from the same rebuilt artifacts as `{first}`"))
            continue
        if complete and column != "control":  # the control's is always an assembly of its own
            shared.setdefault(signature, column)
        for row_id, build in _assemble_column(checker, jobs, inputs, column).items():
            done.setdefault(row_id, {})[column] = build
    rows = []
    for job in jobs:
        for label in (*(p.oci for p in job.platforms), INDEX):
            by_column = done[f"{job.recipe.name}@{label}"]
            control = by_column["control"]
            if control.status == NOT_REBUILT:  # the reason is the image's (its base), not a column's
                cells = [Cell(variation=v, state=NOT_REBUILT, reason=control.reason) for v in checker.variations]
            else:
                cells = [checker._compare_named(job.recipe.name, label, control, by_column[v])
                         for v in checker.variations]
            if lock is not None:
                cells.append(_against_lock(checker, job, label, control, lock.images.get(job.ref)))
            rows.append(Row(recipe=job.recipe.name, platform=label, control=control, cells=tuple(cells),
                            kind="image"))
    return rows


def _inputs(jobs: Sequence[ImageJob], builds: Mapping[str, Mapping[str, Build]],
            column: str) -> dict[str, Build]:
    """The rebuilds of `column` the images take, by job id (a job not rebuilt under it: absent)."""
    out = {}
    for job in jobs:
        for platform in job.platforms:
            for name in job.spec.artifact_recipes:
                job_id = f"{name}@{platform.oci}"
                build = builds.get(job_id, {}).get(column)
                if build is not None:
                    out[job_id] = build
    return out


def _assemble_column(checker: Checker, jobs: Sequence[ImageJob], inputs: Mapping[str, Build],
                     column: str) -> dict[str, Build]:
    """Every image of one column, in order (a base image before the images on it)."""
    store = Store(checker.directory / "images" / column)  # made by the first image assembled
    by_digest = {f.digest: b.files[f.name] for b in inputs.values() for f in b.outputs}
    assembler = Assembler(store=store, workspace=checker.project.workspace.root,
                          files=lambda f: by_digest[f.digest])
    out: dict[str, Build] = {}
    made: dict[str, BuiltImage] = {}
    with assembler.resolver() as resolver:
        for job in jobs:
            labels = (*(p.oci for p in job.platforms), INDEX)
            why = _not_rebuilt(job, inputs, made, column)
            if why is not None:
                out |= {f"{job.recipe.name}@{label}": Build(variation=column, status=NOT_REBUILT, reason=why)
                        for label in labels}
                continue
            records = {(name, p.oci): BuildRecord(recipe=name, platform=p, status="built", outputs=b.outputs,
                                                  input_key=b.input_key)
                       for p in job.platforms for name in job.spec.artifact_recipes
                       for b in [inputs[f"{name}@{p.oci}"]]}
            # what the explanations know of the builds: those of the artifact in the layer
            variants = {p.oci: next((inputs[f"{n}@{p.oci}"].variant for n in job.spec.artifact_recipes),
                                    None) or Variant(label=column) for p in job.platforms}
            variants[INDEX] = variants[job.platforms[0].oci]
            try:
                store.layout.ensure()
                image = assembler.one(job, resolver, records=records, unavailable=frozenset(), done=made)
                if image.index is None:
                    raise CrossyardError(image.error or f"image {job.ref} was not assembled")
            except CrossyardError as error:
                out |= {f"{job.recipe.name}@{label}": Build(variation=column, status=FAILED, reason=str(error))
                        for label in labels}
                continue
            made[job.recipe.name] = image
            views = checker.directory / "views" / column / job.recipe.name
            for label in labels:
                view, digest = _view(store.layout, image.index, label, views / label.replace("/", "-"))
                output = INDEX if label == INDEX else "manifest"
                out[f"{job.recipe.name}@{label}"] = Build(
                    variation=column, status="built", input_key=image.key, strategy="assembled",
                    outputs=(OutputFile(name=output, digest=digest, size=0, mode=0o644),),
                    files={output: view}, variant=variants[label])
    return out


def _not_rebuilt(job: ImageJob, inputs: Mapping[str, Build], made: Mapping[str, BuiltImage],
                 column: str) -> str | None:
    """Why `job` cannot be re-assembled in `column`, if so."""
    if job.from_dockerfile:
        return ("a Dockerfile image's index is not re-assembled (a BuildKit job's manifest is rebuilt and "
                "compared on its own row; a legacy one is only as reproducible as its Dockerfile)")
    if job.spec.base.kind == "registry":
        return f"its base {job.spec.base.text} is a registry image, not rebuilt by crossyard"
    for name in job.after:
        if name not in made:
            return f"its base image recipe `{name}` was not re-assembled under `{column}`"
    for platform in job.platforms:
        for name in job.spec.artifact_recipes:
            build = inputs.get(f"{name}@{platform.oci}")
            if build is None or build.status != "built":
                reason = build.reason if build is not None else "not rebuilt"
                return f"{name}@{platform.oci} was not rebuilt under `{column}`: {reason}"
    return None


def _view(layout: OciLayout, index: Descriptor, label: str, where: Path) -> tuple[Path, str]:
    """A layout holding one thing to compare (the image's index, or one platform's manifest) on
    `layout`'s blobs; and that thing's digest."""
    document = layout.read_json(index.digest)
    digest = index.digest
    if label != INDEX:
        manifests = [m for m in document.get("manifests", [])
                     if platform_label(Descriptor.from_json(m).platform) == label]
        document = {"schemaVersion": 2, "manifests": manifests}
        digest = str(manifests[0]["digest"]) if manifests else "absent"
    _write_view(layout, document, where)
    return where, digest


def _write_view(layout: OciLayout, document: Mapping[str, Any], where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    atomic_write_text(where / "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}) + "\n")
    atomic_write_text(where / "index.json", json.dumps(document, indent=2, sort_keys=True) + "\n")
    blobs = where / "blobs"
    if not blobs.exists():
        blobs.symlink_to(layout.root / "blobs", target_is_directory=True)


def _against_lock(checker: Checker, job: ImageJob, label: str, control: Build,
                  entry: ImageLockEntry | None) -> Cell:
    """The control's assembly held against the lock's image entry (index, or one platform's
    manifest), explained through the store's copy of the locked image when it has one."""
    if entry is None:
        return Cell(variation=LOCK, state=NOT_REBUILT, reason=f"image {job.ref} is not in crossyard.lock")
    if control.status != "built":
        return Cell(variation=LOCK, state=NOT_REBUILT, reason=control.reason or f"the control assembly {control.status}")
    output, got = control.outputs[0].name, control.outputs[0].digest
    if label == INDEX:
        locked = entry.index
    else:
        locked = next((p.manifest for p in entry.platforms if p.platform == label), "absent")
    if locked == got:
        return Cell(variation=LOCK, state=IDENTICAL)
    layout = checker.project.store.layout
    explanations: tuple[Explanation, ...] = ()
    where = checker.directory / "views" / LOCK / job.recipe.name / label.replace("/", "-")
    if layout.has_blob(entry.index):
        view, _ = _view(layout, Descriptor(media_type="", digest=entry.index, size=0), label, where / "locked")
        assert control.variant is not None
        explanations = tuple(causes_first(explain_trees(
            view, control.files[output], left=replace(control.variant, label=LOCK), right=control.variant)))
    stored = checker.project.store.find_image(entry.key)
    notes = []
    if stored is not None and _view(layout, stored.index, label, where / "stored")[1] == got:
        notes.append(f"{output}: the lock says {locked}, but the store's image of key {entry.key} and the "
                     f"re-assembly are both {got}: the lock entry was edited or corrupted")
    elif entry.key != control.input_key:
        notes.append(f"image key {entry.key} is now {control.input_key}: what the image takes changed "
                     "(its artifacts' digests, its base or [image])")
    if explanations:
        notes.append("; ".join(e.summary for e in explanations))
    elif not layout.has_blob(entry.index):
        notes.append(f"{output}: the locked image is not in the store to explain the difference")
    reason = "; ".join(notes)
    cell = Cell(variation=LOCK, state=DIFFERS, reason=reason, digests={output: (locked, got)},
                explanations=explanations)
    where = checker.directory / "explain" / job.recipe.name / label.replace("/", "-")
    atomic_write_text(where / f"{LOCK}.json", _json(cell.to_json(checker.directory)))
    return cell
