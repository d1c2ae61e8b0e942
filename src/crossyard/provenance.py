"""in-toto Statement v1 with a SLSA provenance v1 predicate, for a DSSE envelope."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1: Final = "https://slsa.dev/provenance/v1"
BUILD_TYPE: Final = "https://crossyard.dev/build/v1"


def provenance_statement(
    *,
    subject_name: str,
    subject_digest: str,
    builder_id: str,
    external_parameters: Mapping[str, Any],
    resolved_dependencies: Sequence[Mapping[str, Any]] = (),
) -> bytes:
    algorithm, hex_ = subject_digest.split(":", 1)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {algorithm: hex_}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": dict(external_parameters),
                "resolvedDependencies": [dict(d) for d in resolved_dependencies],
            },
            "runDetails": {"builder": {"id": builder_id}},
        },
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
