"""in-toto Statement v1 with a SLSA provenance v1 predicate, for a DSSE envelope.

What a build recorded about each recipe x platform job (`JobRecord`, read from the store's
annotations by `job_record`) becomes the predicate: recipe and version (external parameters),
input key, toolchain identity, strategy and node per platform (internal parameters), the
source digest (a resolved dependency), and start/end times (run metadata) when recorded.
The statement is canonical JSON with no publish-time clock in it: the same build gives the
same bytes, so re-publishing it changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from . import __version__
from .annotations import (
    ANNOTATION_FINISHED,
    ANNOTATION_INPUT_KEY,
    ANNOTATION_NODE,
    ANNOTATION_PLATFORM,
    ANNOTATION_RECIPE,
    ANNOTATION_SOURCE_DIGEST,
    ANNOTATION_STARTED,
    ANNOTATION_STRATEGY,
    ANNOTATION_TOOLCHAIN,
)
from .hashing import canonical_json
from .oci import media

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1: Final = "https://slsa.dev/provenance/v1"
BUILD_TYPE: Final = "https://crossyard.dev/build/v1"
BUILDER_ID: Final = "https://crossyard.dev/builder/local"



@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """What is known about one recipe x platform build; "" where nothing was recorded."""

    recipe: str
    platform: str
    input_key: str
    version: str = ""
    toolchain: str = ""
    strategy: str = ""
    node: str = ""
    started: str = ""  # RFC 3339
    finished: str = ""
    source_digest: str = ""
    outputs: Mapping[str, str] = field(default_factory=dict)  # file name → digest

    @property
    def missing(self) -> tuple[str, ...]:
        names = ("version", "toolchain", "strategy", "node", "started", "finished",
                 "source_digest")
        return tuple(n for n in names if not getattr(self, n))


def job_record(
    *entry_and_manifest_annotations: Mapping[str, str] | None,
    version: str = "",
    source_digest: str = "",
    outputs: Mapping[str, str] | None = None,
) -> JobRecord:
    """A JobRecord from store annotations (earlier mappings win), plus what the caller knows."""
    notes: dict[str, str] = {}
    for mapping in reversed(entry_and_manifest_annotations):
        notes.update(mapping or {})
    return JobRecord(
        recipe=notes.get(ANNOTATION_RECIPE, ""),
        platform=notes.get(ANNOTATION_PLATFORM, ""),
        input_key=notes.get(ANNOTATION_INPUT_KEY, ""),
        version=version or notes.get(media.ANNOTATION_VERSION, ""),
        toolchain=notes.get(ANNOTATION_TOOLCHAIN, ""),
        strategy=notes.get(ANNOTATION_STRATEGY, ""),
        node=notes.get(ANNOTATION_NODE, ""),
        started=notes.get(ANNOTATION_STARTED, ""),
        finished=notes.get(ANNOTATION_FINISHED, ""),
        source_digest=source_digest or notes.get(ANNOTATION_SOURCE_DIGEST, ""),
        outputs=dict(outputs or {}),
    )


def _digest_set(digest: str) -> dict[str, str]:
    algorithm, hex_ = digest.split(":", 1)
    return {algorithm: hex_}


def provenance_statement(
    *,
    subjects: Sequence[tuple[str, str]],
    recipe: str,
    version: str,
    jobs: Sequence[JobRecord],
    builder_id: str = BUILDER_ID,
    extra_parameters: Mapping[str, Any] | None = None,
) -> bytes:
    """Canonical JSON of the statement; `subjects` are (name, sha256 digest) pairs."""
    ordered = sorted(jobs, key=lambda j: j.platform)
    sources = sorted({j.source_digest for j in ordered if j.source_digest})
    dependencies = [
        {"name": f"{recipe} source", "uri": f"crossyard:recipe/{recipe}#source",
         "digest": _digest_set(d)}
        for d in sources
    ]
    internal = {
        "jobs": [
            {key: value for key, value in {
                "platform": j.platform, "inputKey": j.input_key, "toolchain": j.toolchain,
                "strategy": j.strategy, "node": j.node, "startedOn": j.started,
                "finishedOn": j.finished, "outputs": dict(j.outputs),
            }.items() if value}
            for j in ordered
        ],
    }
    metadata: dict[str, str] = {}
    started = sorted(j.started for j in ordered if j.started)
    finished = sorted(j.finished for j in ordered if j.finished)
    if started:
        metadata["startedOn"] = started[0]
    if finished:
        metadata["finishedOn"] = finished[-1]
    keys = sorted({j.input_key for j in ordered if j.input_key})
    if keys:
        metadata["invocationId"] = keys[0] if len(keys) == 1 else "+".join(k[7:19] for k in keys)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": _digest_set(digest)} for name, digest in subjects],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "recipe": recipe, "version": version,
                    "platforms": [j.platform for j in ordered],
                    **dict(extra_parameters or {}),
                },
                "internalParameters": internal,
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": builder_id, "version": {"crossyard": __version__}},
                "metadata": metadata,
            },
        },
    }
    return canonical_json(statement)
