"""Every `dev.crossyard.*` annotation key: the store's on-disk schema, spelled once.

Keys on a manifest are part of its digest; keys said to be "index entry only" sit on the
store's index.json entry, so they never change what a digest covers.
"""

from __future__ import annotations

from typing import Final

# --- a binary artifact (one build job's output) ---
# The job's input key (sha256 over everything that went into the build): the cache key.
ANNOTATION_INPUT_KEY: Final = "dev.crossyard.input-key"
# The recipe's name.
ANNOTATION_RECIPE: Final = "dev.crossyard.recipe"
# The target platform, canonical (`linux/arm64`, Platform.oci).
ANNOTATION_PLATFORM: Final = "dev.crossyard.platform"
# The toolchain's identity text (part of the input key).
ANNOTATION_TOOLCHAIN: Final = "dev.crossyard.toolchain"
# The build strategy (native, cross, emulated, ...; part of the input key).
ANNOTATION_STRATEGY: Final = "dev.crossyard.strategy"
# Which executor node ran the job (index entry only).
ANNOTATION_NODE: Final = "dev.crossyard.node"
# When the job started, RFC 3339 (index entry only).
ANNOTATION_STARTED: Final = "dev.crossyard.started"
# When the job finished, RFC 3339 (index entry only).
ANNOTATION_FINISHED: Final = "dev.crossyard.finished"
# A stored file's permission bits, octal text like "0755" (on each file's layer descriptor).
ANNOTATION_FILE_MODE: Final = "dev.crossyard.file.mode"
# The Docker engine's image id of an engine-built (Dockerfile) output.
ANNOTATION_DOCKER_IMAGE_ID: Final = "dev.crossyard.docker.image-id"
# The digest of the recipe's resolved sources (provenance).
ANNOTATION_SOURCE_DIGEST: Final = "dev.crossyard.source-digest"

# --- an assembled image ---
# The image's key (sha256 over its inputs): the image cache key (index entry).
ANNOTATION_IMAGE_KEY: Final = "dev.crossyard.image-key"
# "false" when the output is not bit-for-bit reproducible (absent means reproducible).
ANNOTATION_REPRODUCIBLE: Final = "dev.crossyard.reproducible"
# When an image was tagged in the store, RFC 3339 (index entry only).
ANNOTATION_STORED: Final = "dev.crossyard.stored"
# The base image reference the image was assembled on (or "crossyard/static").
ANNOTATION_BASE: Final = "dev.crossyard.base"
# The digest of the base image's manifest.
ANNOTATION_BASE_DIGEST: Final = "dev.crossyard.base.digest"
# The digest of the CA bundle a base image carries.
ANNOTATION_CA_BUNDLE: Final = "dev.crossyard.base.ca-bundle"
# What made a layer's compressed bytes (on its layer descriptor): the lock records it.
ANNOTATION_COMPRESSOR: Final = "dev.crossyard.compressor"

# --- publishing ---
# On a cosign signature manifest: JSON, file name → {digest, detached signature of its bytes}.
ANNOTATION_FILES: Final = "dev.crossyard.files"
