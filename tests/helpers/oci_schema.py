"""Validate OCI documents against the image-spec JSON schemas in tests/data/oci-schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema

# A copy of ../shared/oci-schema (image-spec schema/ at 13cff54), so a clone tests on its own.
SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "oci-schema"


def validate(instance: Any, name: str) -> None:
    resources = []
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        resource = referencing.Resource.from_contents(schema, default_specification=referencing.jsonschema.DRAFT4)
        for base in (
            "",
            "https://opencontainers.org/schema/",
            "https://opencontainers.org/schema/image/",
            "https://opencontainers.org/schema/image/descriptor/",
            "https://opencontainers.org/schema/descriptor/",
        ):
            resources.append((base + path.name, resource))
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(resources)
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft4Validator(schema, registry=registry).validate(instance)
