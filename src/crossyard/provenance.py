"""in-toto Statement v1 with a SLSA provenance v1 predicate, for a DSSE envelope.

What a build recorded about each recipe x platform job (its `BuildRecord`) becomes the predicate: recipe and version (external parameters),
input key, toolchain identity, strategy and node per platform (internal parameters), the
source digest (a resolved dependency), and start/end times (run metadata) when recorded.
The statement is canonical JSON with no publish-time clock in it: the same build gives the
same bytes, so re-publishing it changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from . import __version__
from .hashing import canonical_json
from .records import BuildRecord

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1: Final = "https://slsa.dev/provenance/v1"
BUILD_TYPE: Final = "https://crossyard.dev/build/v1"
BUILDER_ID: Final = "https://crossyard.dev/builder/local"


def _digest_set(digest: str) -> dict[str, str]:
    """An in-toto DigestSet: `sha256:<hex>` (a tree or a download, `:<subdir>` dropped) or
    `git:<commit>:<subdir>` (a pinned commit)."""
    algorithm, hex_, *_ = digest.split(":")
    return {"gitCommit": hex_} if algorithm == "git" else {algorithm: hex_}


def provenance_statement(
    *,
    subjects: Sequence[tuple[str, str]],
    recipe: str,
    version: str,
    jobs: Sequence[BuildRecord],
    builder_id: str = BUILDER_ID,
    extra_parameters: Mapping[str, Any] | None = None,
) -> bytes:
    """Canonical JSON of the statement; `subjects` are (name, sha256 digest) pairs."""
    ordered = sorted(jobs, key=lambda j: (j.platform.oci, j.recipe))
    sources = sorted({j.source for j in ordered if j.source and j.source != "none"})
    dependencies = [
        {"name": f"{recipe} source", "uri": f"crossyard:recipe/{recipe}#source",
         "digest": _digest_set(d)}
        for d in sources
    ]
    internal = {
        "jobs": [
            {key: value for key, value in {
                "platform": j.platform.oci, "inputKey": j.input_key, "toolchain": j.toolchain,
                "strategy": j.strategy, "node": j.node, "startedOn": j.started,
                "finishedOn": j.finished, "outputs": j.digests,
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
                    "platforms": sorted({j.platform.oci for j in ordered}),
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
