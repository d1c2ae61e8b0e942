"""OCI distribution client: push and pull blobs and manifests over verified TLS.

Not yet tested against a real registry (see the report); the pure parts are unit-tested.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from ..errors import ConfigurationError, CrossyardError, IntegrityError
from ..oci.layout import Descriptor, OciLayout
from .auth import RegistryAuth

CHUNK: Final = 16 * 1024 * 1024
PIECE: Final = 64 * 1024
MONOLITHIC_LIMIT: Final = 4 * 1024 * 1024
MANIFEST_TYPES: Final = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
T = TypeVar("T")


class RegistryError(CrossyardError):
    """The registry answered something we cannot continue from."""


def add_query(location: str, base: str, **params: str) -> str:
    """Resolve an opaque upload Location against `base` and ADD params to its query."""
    url = urlsplit(urljoin(base, location))
    query = parse_qsl(url.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((url.scheme, url.netloc, url.path, urlencode(query), url.fragment))


def child_descriptors(document: dict[str, Any]) -> list[Descriptor]:
    """Every descriptor an index or manifest points at: manifests, config, layers, subject."""
    found: list[Descriptor] = []
    for key in ("manifests", "layers", "blobs"):
        found.extend(Descriptor.from_json(d) for d in document.get(key, []) or [])
    if isinstance(document.get("config"), dict):
        found.append(Descriptor.from_json(document["config"]))
    return found


class RegistryClient:
    """Context manager over an httpx.Client that verifies TLS against `ca_path`."""

    def __init__(
        self,
        url: str,
        *,
        ca_path: Path | None,
        username: str | None = None,
        password: str | None = None,
        max_workers: int = 4,
        retries: int = 5,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        event_hooks: dict[str, list[Callable[..., Any]]] | None = None,
    ) -> None:
        self.base = url.rstrip("/")
        self.host = urlsplit(self.base).netloc
        self.username = username
        self._max_workers = max_workers
        self._retries = retries
        self._backoff = backoff
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_path)) if ca_path is not None else True
        )
        self._http = httpx.Client(
            verify=verify,
            auth=RegistryAuth(username, password),
            timeout=httpx.Timeout(60.0, connect=10.0),
            transport=transport,
            event_hooks=event_hooks or {},
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._http.close()

    # -- plumbing -------------------------------------------------------------------------
    def _retry(self, action: Callable[[], T]) -> T:
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return action()
            except (httpx.TransportError, _ServerError) as exc:
                if attempt == self._retries:
                    raise RegistryError(f"registry {self.host}: {exc}") from exc
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        def once() -> httpx.Response:
            response = self._http.request(method, url, **kwargs)
            if response.status_code >= 500:
                raise _ServerError(f"{method} {url}: HTTP {response.status_code}")
            return response

        return self._retry(once)

    # -- API ------------------------------------------------------------------------------
    def ping(self) -> None:
        response = self._request("GET", f"{self.base}/v2/")
        if response.status_code == 401:
            raise ConfigurationError(
                f"registry {self.host} refused credentials for {self.username or 'anonymous'}: "
                "check the username and password (CROSSYARD_REGISTRY_USERNAME/_PASSWORD)"
            )
        if response.status_code != 200:
            raise RegistryError(f"registry {self.host}: GET /v2/ gave {response.status_code}")

    def has_blob(self, repo: str, digest: str) -> bool:
        return self._request("HEAD", f"{self.base}/v2/{repo}/blobs/{digest}").status_code == 200

    def mount_blob(self, repo: str, digest: str, source_repo: str) -> bool:
        response = self._request(
            "POST",
            f"{self.base}/v2/{repo}/blobs/uploads/",
            params={"mount": digest, "from": source_repo},
        )
        return response.status_code == 201

    def push_blob(self, repo: str, layout: OciLayout, descriptor: Descriptor) -> None:
        digest = descriptor.digest
        if self.has_blob(repo, digest):
            return
        path = layout.blob_path(digest)
        self._retry(lambda: self._upload(repo, path, digest, descriptor.size))

    def _upload(self, repo: str, path: Path, digest: str, size: int) -> None:
        start = self._http.post(f"{self.base}/v2/{repo}/blobs/uploads/")
        if start.status_code >= 500:
            raise _ServerError(f"start upload: HTTP {start.status_code}")
        if start.status_code != 202:
            raise RegistryError(f"registry {self.host}: cannot start upload ({start.status_code})")
        location = add_query(start.headers["Location"], self.base)
        if size <= MONOLITHIC_LIMIT:
            done = self._http.put(
                add_query(location, self.base, digest=digest),
                content=path.read_bytes(),
                headers={"Content-Type": "application/octet-stream"},
            )
        else:
            offset = 0
            with path.open("rb") as handle:
                while offset < size:
                    length = min(CHUNK, size - offset)
                    end = offset + length - 1
                    try:
                        response = self._http.patch(
                            location,
                            content=_file_slice(handle, offset, length),
                            headers={
                                "Content-Type": "application/octet-stream",
                                "Content-Length": str(length),
                                "Content-Range": f"{offset}-{end}",
                            },
                        )
                    except httpx.TransportError:
                        offset, location = self._resume(location)
                        continue
                    if response.status_code >= 500:
                        raise _ServerError(f"PATCH: HTTP {response.status_code}")
                    if response.status_code != 202:
                        raise RegistryError(f"upload chunk refused: {response.status_code}")
                    location = add_query(response.headers["Location"], self.base)
                    offset = _range_end(response.headers.get("Range", "")) + 1
            done = self._http.put(add_query(location, self.base, digest=digest))
        if done.status_code >= 500:
            raise _ServerError(f"PUT blob: HTTP {done.status_code}")
        if done.status_code != 201:
            raise IntegrityError(
                f"registry {self.host} refused blob {digest} ({done.status_code}): {done.text}"
            )

    def _resume(self, location: str) -> tuple[int, str]:
        status = self._http.get(location)
        if status.status_code != 204:
            raise _ServerError(f"upload status: HTTP {status.status_code}")
        new_location = add_query(status.headers.get("Location", location), self.base)
        return _range_end(status.headers.get("Range", "")) + 1, new_location

    def has_manifest(self, repo: str, ref: str, digest: str) -> bool:
        response = self._request(
            "HEAD",
            f"{self.base}/v2/{repo}/manifests/{ref}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        return (
            response.status_code == 200
            and response.headers.get("Docker-Content-Digest") == digest
        )

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if self.has_manifest(repo, ref, digest):
            return digest
        response = self._request(
            "PUT",
            f"{self.base}/v2/{repo}/manifests/{ref}",
            content=body,
            headers={"Content-Type": media_type},
        )
        if response.status_code != 201:
            raise RegistryError(
                f"registry {self.host} refused manifest {repo}:{ref} "
                f"({response.status_code}): {response.text}"
            )
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str] | None:
        response = self._request(
            "GET",
            f"{self.base}/v2/{repo}/manifests/{ref}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(f"GET manifest {repo}:{ref}: HTTP {response.status_code}")
        body = response.content
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        header = response.headers.get("Docker-Content-Digest")
        if header is not None and header != actual:
            raise IntegrityError(f"manifest {repo}:{ref}: header says {header}, bytes are {actual}")
        if ref.startswith("sha256:") and ref != actual:
            raise IntegrityError(f"manifest {repo}@{ref}: bytes hash to {actual}")
        return body, response.headers.get("Content-Type", "")

    def get_blob_bytes(self, repo: str, digest: str, *, limit: int = 4 * 1024 * 1024) -> bytes:
        """A small blob in memory, its sha256 checked."""
        response = self._request("GET", f"{self.base}/v2/{repo}/blobs/{digest}")
        if response.status_code != 200:
            raise RegistryError(f"GET blob {digest}: HTTP {response.status_code}")
        if len(response.content) > limit:
            raise IntegrityError(f"blob {digest} is larger than {limit} bytes")
        if "sha256:" + hashlib.sha256(response.content).hexdigest() != digest:
            raise IntegrityError(f"blob {repo}@{digest}: bytes do not match the digest")
        return response.content

    def fetch_blob(self, repo: str, digest: str, into: OciLayout) -> None:
        if into.has_blob(digest):
            return

        def once() -> None:
            with self._http.stream("GET", f"{self.base}/v2/{repo}/blobs/{digest}") as response:
                if response.status_code >= 500:
                    raise _ServerError(f"GET blob: HTTP {response.status_code}")
                if response.status_code != 200:
                    raise RegistryError(f"GET blob {digest}: HTTP {response.status_code}")
                header = response.headers.get("Docker-Content-Digest")
                if header is not None and header != digest:
                    raise IntegrityError(f"blob {digest}: registry says {header}")
                with into.blob_writer(expected_digest=digest) as writer:
                    for part in response.iter_bytes(CHUNK):
                        writer.write(part)

        self._retry(once)

    # -- graphs -----------------------------------------------------------------------------
    def push_layout(self, layout: OciLayout, ref_name: str, repo: str, tag: str) -> str:
        """Push the layout entry named `ref_name` (index, manifest or artifact) as repo:tag."""
        root = _find_ref(layout, ref_name)
        self._push_tree(layout, root, repo)
        return self.put_manifest(repo, tag, layout.read_blob(root.digest), root.media_type)

    def _push_tree(self, layout: OciLayout, node: Descriptor, repo: str) -> None:
        document = layout.read_json(node.digest)
        children = child_descriptors(document)
        manifests = [d for d in children if d.media_type in MANIFEST_TYPES]
        blobs = [d for d in children if d.media_type not in MANIFEST_TYPES]
        with ThreadPoolExecutor(max_workers=self._max_workers) as pool:
            list(pool.map(lambda d: self.push_blob(repo, layout, d), blobs))
        for child in manifests:
            self._push_tree(layout, child, repo)
            self.put_manifest(repo, child.digest, layout.read_blob(child.digest), child.media_type)

    def pull(self, repo: str, ref: str, into: OciLayout) -> Descriptor:
        got = self.get_manifest(repo, ref)
        if got is None:
            raise ConfigurationError(f"{self.host}/{repo}:{ref} not found in the registry")
        body, media_type = got
        root = self._store_tree(repo, body, media_type, into)
        return root

    def _store_tree(self, repo: str, body: bytes, media_type: str, into: OciLayout) -> Descriptor:
        import json

        document = json.loads(body)
        for child in child_descriptors(document):
            if child.media_type in MANIFEST_TYPES:
                got = self.get_manifest(repo, child.digest)
                if got is None:
                    raise RegistryError(f"{repo}@{child.digest} missing")
                self._store_tree(repo, got[0], child.media_type, into)
            else:
                self.fetch_blob(repo, child.digest, into)
        return into.write_blob(body, media_type or document.get("mediaType", ""))


def _file_slice(handle: BinaryIO, offset: int, length: int) -> Iterator[bytes]:
    """Stream `length` bytes from `offset` in small pieces: constant, small memory."""
    handle.seek(offset)
    remaining = length
    while remaining > 0:
        piece = handle.read(min(PIECE, remaining))
        if not piece:
            raise IntegrityError(f"{handle.name} is shorter than its descriptor says")
        remaining -= len(piece)
        yield piece


class _ServerError(Exception):
    pass


def _range_end(header: str) -> int:
    """`Range: 0-1234` → 1234; an empty range (nothing received) → -1."""
    if "-" not in header:
        return -1
    return int(header.split("-", 1)[1])


def _find_ref(layout: OciLayout, ref_name: str) -> Descriptor:
    for descriptor in layout.manifests():
        annotations = descriptor.annotations or {}
        if annotations.get("org.opencontainers.image.ref.name") == ref_name:
            return descriptor
    raise ConfigurationError(f"{layout.root}/index.json has no entry named {ref_name!r}")


def iter_refs(layout: OciLayout) -> Iterator[tuple[str, Descriptor]]:
    for descriptor in layout.manifests():
        name = (descriptor.annotations or {}).get("org.opencontainers.image.ref.name")
        if name:
            yield name, descriptor
