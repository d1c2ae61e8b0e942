"""OCI and related media types, spelled once."""

from __future__ import annotations

from typing import Final

INDEX: Final = "application/vnd.oci.image.index.v1+json"
MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
CONFIG: Final = "application/vnd.oci.image.config.v1+json"
LAYER_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
EMPTY: Final = "application/vnd.oci.empty.v1+json"
EMPTY_JSON: Final = b"{}"

DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"

# The kinds of document a registry serves under /manifests/, Docker's spellings read as OCI's:
# an image manifest (config + layers), an index (a list of manifests), either.
IMAGE_MANIFESTS: Final = (MANIFEST, DOCKER_MANIFEST)
INDEXES: Final = (INDEX, DOCKER_MANIFEST_LIST)
MANIFESTS_AND_INDEXES: Final = IMAGE_MANIFESTS + INDEXES

# A crossyard binary artifact: one layer per file, named by org.opencontainers.image.title,
# the way oras pushes files, so `oras pull` restores them.
ARTIFACT_TYPE: Final = "application/vnd.crossyard.artifact.v1"
BINARY_LAYER: Final = "application/vnd.crossyard.binary.v1"

ANNOTATION_TITLE: Final = "org.opencontainers.image.title"
ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED: Final = "org.opencontainers.image.created"
ANNOTATION_SOURCE: Final = "org.opencontainers.image.source"
ANNOTATION_REVISION: Final = "org.opencontainers.image.revision"
ANNOTATION_VERSION: Final = "org.opencontainers.image.version"
