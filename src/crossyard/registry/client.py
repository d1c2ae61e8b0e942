"""OCI distribution client: push and pull blobs and manifests over verified TLS.

Pushing is lazy (a HEAD first; a blob the registry has, or can mount from another repository it
knows, is never uploaded), streaming (constant memory however large the blob) and resumable: a
chunked upload that loses its connection asks the registry how far it got (`Range`) and goes on
from there. Pulling checks every byte against its digest before anything is stored.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from ..errors import ConfigurationError, CrossyardError, IntegrityError
from ..oci import media
from ..oci.layout import Descriptor, OciLayout
from .auth import RegistryAuth

CHUNK: Final = 64 * 1024 * 1024
PIECE: Final = 1024 * 1024
MONOLITHIC_LIMIT: Final = 4 * 1024 * 1024
# The Accept header of a manifest request: every manifest and index kind, so the registry
# serves the document as stored (one whose kind was not listed may be converted or refused).
ACCEPT_MANIFESTS: Final = ", ".join(media.MANIFESTS_AND_INDEXES)
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


def manifest_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class RegistryClient:
    """Context manager over one keep-alive httpx.Client that verifies TLS against `ca_path`.

    The client remembers, for its lifetime, which repositories hold which blobs (seen by HEAD,
    pushed or pulled), and mounts from them instead of uploading again.
    """

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
        chunk_size: int = CHUNK,
        monolithic_limit: int = MONOLITHIC_LIMIT,
        transport: httpx.BaseTransport | None = None,
        event_hooks: dict[str, list[Callable[..., Any]]] | None = None,
    ) -> None:
        self.base = url.rstrip("/")
        self.host = urlsplit(self.base).netloc
        self.username = username
        self._max_workers = max_workers
        self._retries = retries
        self._backoff = backoff
        self._chunk = chunk_size
        self._monolithic_limit = monolithic_limit
        self._known: dict[str, set[str]] = {}  # blob digest → repositories known to hold it
        self._lock = threading.Lock()
        self._ca_path = ca_path
        self.resumed_at: list[int] = []  # offsets uploads resumed from (what the server said)
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_path)) if ca_path is not None else True
        )
        self._http = httpx.Client(
            verify=verify,
            auth=RegistryAuth(username, password),
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_keepalive_connections=max_workers + 2),
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
        """Run `action`, retrying connection errors and 5xx with exponential backoff."""
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return action()
            except (httpx.TransportError, _ServerError) as exc:
                if "certificate has expired" in str(exc):  # more trust cannot fix this
                    raise ConfigurationError(
                        f"registry {self.host}: its TLS certificate has expired ({exc}); renew "
                        "it: for the workspace's managed registry run `crossyard certs rotate` "
                        "(re-issues it and reloads the registry)"
                    ) from exc
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # retrying cannot fix trust
                    raise ConfigurationError(
                        f"registry {self.host}: its TLS certificate is not trusted by "
                        f"{self._ca_path or 'the system CAs'} ({exc}); pass the registry's CA "
                        "with --ca / CROSSYARD_REGISTRY_CA (`crossyard certs trust --format pem`)"
                    ) from exc
                if attempt == self._retries:
                    raise RegistryError(
                        f"registry {self.host}: {exc or type(exc).__name__} "
                        f"(gave up after {attempt + 1} attempts)"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    def _check(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code >= 500 or response.status_code == 429:
            raise self._server_error(response, what)
        if response.status_code == 401:
            raise ConfigurationError(
                f"registry {self.host} refused credentials for {self.username or 'anonymous'} "
                f"({what}): check the username and password "
                "(CROSSYARD_REGISTRY_USERNAME/_PASSWORD)"
            )
        if response.status_code == 403:
            raise ConfigurationError(
                f"registry {self.host}: {self.username or 'anonymous'} may not {what}; "
                "ask the registry's admin for push rights"
            )
        return response

    def _server_error(self, response: httpx.Response, what: str) -> Exception:
        """A 5xx/429 to retry (_ServerError, with what the registry said), or, when the registry
        is out of disk space, a RegistryError that says so: no retry frees a disk."""
        full = _error_text(response)
        said = full if len(full) <= 400 else full[:399] + "…"
        if _disk_full(full):
            return RegistryError(
                f"registry {self.host} is out of disk space ({what}: {said}): free space where it "
                "stores blobs (delete images nobody needs and run its garbage collection, e.g. "
                "`docker-registry garbage-collect CONFIG`) or give it a bigger disk, then push "
                "again; blobs the registry already holds are not sent twice"
            )
        return _ServerError(f"{what}: HTTP {response.status_code}" + (f": {said}" if said else ""))

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        what = f"{method} {urlsplit(url).path}"
        return self._retry(lambda: self._check(self._http.request(method, url, **kwargs), what))

    def remember(self, digest: str, repo: str) -> None:
        """Note that `repo` holds blob `digest`: pushes to other repos will mount it from there."""
        with self._lock:
            self._known.setdefault(digest, set()).add(repo)

    # -- API ------------------------------------------------------------------------------
    def ping(self) -> None:
        response = self._request("GET", f"{self.base}/v2/")
        if response.status_code != 200:
            raise RegistryError(f"registry {self.host}: GET /v2/ gave {response.status_code}")

    def has_blob(self, repo: str, digest: str) -> bool:
        found = self._request("HEAD", f"{self.base}/v2/{repo}/blobs/{digest}").status_code == 200
        if found:
            self.remember(digest, repo)
        return found

    def mount_blob(self, repo: str, digest: str, source_repo: str) -> bool:
        """Cross-repository mount (`POST …?mount=&from=`): True when no upload is needed."""
        response = self._request(
            "POST",
            f"{self.base}/v2/{repo}/blobs/uploads/",
            params={"mount": digest, "from": source_repo},
        )
        if response.status_code == 201:
            self.remember(digest, repo)
            return True
        if response.status_code == 202 and "Location" in response.headers:
            # The registry opened an upload instead; cancel it so nothing dangles.
            self._http.delete(add_query(response.headers["Location"], self.base))
        return False

    def push_blob(
        self, repo: str, layout: OciLayout, descriptor: Descriptor, *,
        mount_from: Sequence[str] = (),
    ) -> str:
        """Make `repo` hold the blob; returns how: "present", "mounted" or "uploaded"."""
        digest = descriptor.digest
        if self.has_blob(repo, digest):
            return "present"
        with self._lock:
            known = sorted(self._known.get(digest, set()) - {repo})
        for source in [*mount_from, *(k for k in known if k not in mount_from)]:
            if source != repo and self.mount_blob(repo, digest, source):
                return "mounted"
        path = layout.blob_path(digest)
        self._retry(lambda: self._upload(repo, path, digest, descriptor.size))
        self.remember(digest, repo)
        return "uploaded"

    def push_bytes(self, repo: str, data: bytes, *, check_first: bool = True) -> str:
        """A small blob from memory (signature payloads, configs); returns its digest.

        `check_first=False` skips the HEAD when the caller knows the blob is new: every
        request costs a bcrypt check on an htpasswd registry, and an upload of a blob the
        registry has is harmless."""
        digest = manifest_digest(data)
        if check_first and self.has_blob(repo, digest):
            return digest

        def once() -> None:
            location = self._start_upload(repo)
            done = self._http.put(add_query(location, self.base, digest=digest), content=data,
                                  headers={"Content-Type": "application/octet-stream"})
            self._check(done, f"finish blob {digest} in {repo}")
            if done.status_code != 201:
                raise IntegrityError(f"registry {self.host} refused blob {digest}: {done.text}")

        self._retry(once)
        self.remember(digest, repo)
        return digest

    def _start_upload(self, repo: str) -> str:
        start = self._check(self._http.post(f"{self.base}/v2/{repo}/blobs/uploads/"),
                            f"push to {repo}")
        if start.status_code != 202:
            raise RegistryError(f"registry {self.host}: cannot start upload ({start.status_code})")
        return add_query(start.headers["Location"], self.base)

    def _upload(self, repo: str, path: Path, digest: str, size: int) -> None:
        location = self._start_upload(repo)
        if size <= self._monolithic_limit:
            done = self._http.put(
                add_query(location, self.base, digest=digest),
                content=path.read_bytes(),
                headers={"Content-Type": "application/octet-stream"},
            )
        else:
            location = self._send_chunks(location, path, size)
            done = self._http.put(add_query(location, self.base, digest=digest))
        self._check(done, f"finish blob {digest} in {repo}")
        if done.status_code != 201:
            raise IntegrityError(
                f"registry {self.host} refused blob {digest} ({done.status_code}): {done.text}"
            )

    def _send_chunks(self, location: str, path: Path, size: int) -> str:
        """PATCH the file in chunks; after a lost connection or a 5xx, resume where the
        REGISTRY says it is (its `Range`), never where we think we were."""
        offset, failures = 0, 0
        with path.open("rb") as handle:
            while offset < size:
                length = min(self._chunk, size - offset)
                try:
                    response = self._http.patch(
                        location,
                        content=_file_slice(handle, offset, length),
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(length),
                            "Content-Range": f"{offset}-{offset + length - 1}",
                        },
                    )
                    # 404: the registry dropped or invalidated the upload (distribution does
                    # when a dropped request's bytes land after we asked where it stood); the
                    # status check below then says so and the upload starts over.
                    if response.status_code >= 500 or response.status_code in (404, 416):
                        raise self._server_error(response, "PATCH")
                except (httpx.TransportError, _ServerError) as exc:
                    failures += 1
                    if failures > self._retries:
                        raise _ServerError(f"upload keeps failing: {exc}") from exc
                    time.sleep(self._backoff * failures)
                    offset, location = self._resume(location)
                    with self._lock:
                        self.resumed_at.append(offset)
                    continue
                self._check(response, "upload a chunk")
                if response.status_code != 202:
                    raise RegistryError(f"upload chunk refused: {response.status_code}")
                location = add_query(response.headers["Location"], self.base)
                offset = _range_end(response.headers.get("Range", "")) + 1
        if offset != size:
            raise IntegrityError(f"registry {self.host} holds {offset} bytes of {size}")
        return location

    def _resume(self, location: str) -> tuple[int, str]:
        """Ask the registry how much of the upload it holds (retrying while it is away)."""
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                status = self._http.get(location)
            except httpx.TransportError:
                status = None
            if status is not None and status.status_code == 204:
                end = _range_end(status.headers.get("Range", ""))
                if end <= 0:
                    # "0-0" means 0 or 1 bytes (distribution clamps): start over to be exact.
                    raise _ServerError("upload holds (almost) nothing; starting it again")
                new_location = add_query(status.headers.get("Location", location), self.base)
                return end + 1, new_location
            if status is not None and status.status_code < 500:
                raise _ServerError(f"upload is gone (HTTP {status.status_code}); starting again")
            if attempt < self._retries:
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        raise _ServerError("registry did not answer the upload status")

    def has_manifest(self, repo: str, ref: str, digest: str) -> bool:
        response = self._request(
            "HEAD",
            f"{self.base}/v2/{repo}/manifests/{ref}",
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        return (
            response.status_code == 200
            and response.headers.get("Docker-Content-Digest") == digest
        )

    def put_manifest(
        self, repo: str, ref: str, body: bytes, media_type: str, *, check_first: bool = True
    ) -> str:
        """PUT a manifest unless repo:ref already is exactly these bytes (one HEAD to know)."""
        digest = manifest_digest(body)
        if check_first and self.has_manifest(repo, ref, digest):
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
        said = response.headers.get("Docker-Content-Digest")
        if said is not None and said != digest:
            raise IntegrityError(f"registry stored {repo}:{ref} as {said}, we sent {digest}")
        return digest

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str] | None:
        response = self._request(
            "GET",
            f"{self.base}/v2/{repo}/manifests/{ref}",
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(f"GET manifest {repo}:{ref}: HTTP {response.status_code}")
        body = response.content
        actual = manifest_digest(body)
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
        if manifest_digest(response.content) != digest:
            raise IntegrityError(f"blob {repo}@{digest}: bytes do not match the digest")
        return response.content

    def fetch_blob(self, repo: str, digest: str, into: OciLayout) -> None:
        """Stream a blob into `into`; it lands under its digest only if the bytes match."""
        if into.has_blob(digest):
            return

        def once() -> None:
            url = f"{self.base}/v2/{repo}/blobs/{digest}"
            with self._http.stream("GET", url) as response:
                self._check(response, f"pull {repo}@{digest}")
                if response.status_code != 200:
                    raise RegistryError(f"GET blob {digest}: HTTP {response.status_code}")
                header = response.headers.get("Docker-Content-Digest")
                if header is not None and header != digest:
                    raise IntegrityError(f"blob {digest}: registry says {header}")
                with into.blob_writer(expected_digest=digest) as writer:
                    for part in response.iter_bytes(PIECE):
                        writer.write(part)

        self._retry(once)
        self.remember(digest, repo)

    # -- graphs -----------------------------------------------------------------------------
    def push_layout(self, layout: OciLayout, ref_name: str, repo: str, tag: str) -> str:
        """Push the layout entry named `ref_name` (index, manifest or artifact) as repo:tag."""
        return self.push(layout, _find_ref(layout, ref_name), repo, tag)

    def push(
        self, layout: OciLayout, root: Descriptor, repo: str, tag: str | None = None, *,
        mount_from: Sequence[str] = (),
    ) -> str:
        """Push `root` and everything under it to `repo` (blobs in parallel, then manifests
        children first); tag it if `tag` is given. Returns the root's digest."""
        # The registry accepts a manifest only once everything it references is there, so a tag
        # that already names this root means the whole tree is there: one HEAD, no walk.
        if self.has_manifest(repo, tag or root.digest, root.digest):
            return root.digest
        blobs, manifests = walk(layout, root)
        with ThreadPoolExecutor(max_workers=self._max_workers) as pool:
            list(pool.map(lambda d: self.push_blob(repo, layout, d, mount_from=mount_from),
                          blobs))
        for child in manifests[:-1]:
            self.put_manifest(repo, child.digest, layout.read_blob(child.digest), child.media_type)
        return self.put_manifest(
            repo, tag or root.digest, layout.read_blob(root.digest), root.media_type
        )

    def pull(self, repo: str, ref: str, into: OciLayout) -> Descriptor:
        """Pull repo:ref (index or manifest) with every blob under it, all verified."""
        got = self.get_manifest(repo, ref)
        if got is None:
            sep = "@" if ref.startswith("sha256:") else ":"
            raise ConfigurationError(f"{self.host}/{repo}{sep}{ref} not found in the registry")
        body, media_type = got
        return self._store_tree(repo, body, media_type, into)

    def _store_tree(self, repo: str, body: bytes, media_type: str, into: OciLayout) -> Descriptor:
        document = json.loads(body)
        children = child_descriptors(document)
        for child in children:
            if child.media_type in media.MANIFESTS_AND_INDEXES:
                got = self.get_manifest(repo, child.digest)
                if got is None:
                    raise RegistryError(f"{self.host}/{repo}@{child.digest} is missing")
                self._store_tree(repo, got[0], child.media_type, into)
        blobs = [c for c in children if c.media_type not in media.MANIFESTS_AND_INDEXES]
        with ThreadPoolExecutor(max_workers=self._max_workers) as pool:
            list(pool.map(lambda c: self.fetch_blob(repo, c.digest, into), blobs))
        return into.write_blob(body, media_type or str(document.get("mediaType", "")))


def walk(layout: OciLayout, root: Descriptor) -> tuple[list[Descriptor], list[Descriptor]]:
    """(blobs, manifests): every non-manifest blob under `root` once, and every manifest in
    post-order (children before parents, `root` last)."""
    blobs: dict[str, Descriptor] = {}
    manifests: list[Descriptor] = []
    seen: set[str] = set()

    def visit(node: Descriptor) -> None:
        if node.digest in seen:
            return
        seen.add(node.digest)
        for child in child_descriptors(layout.read_json(node.digest)):
            if child.media_type in media.MANIFESTS_AND_INDEXES:
                visit(child)
            else:
                blobs.setdefault(child.digest, child)
        manifests.append(node)

    visit(root)
    # Biggest first: the long uploads start at once and the small ones fill in around them.
    return sorted(blobs.values(), key=lambda d: -d.size), manifests


def _file_slice(handle: BinaryIO, offset: int, length: int) -> Iterator[bytes]:
    """Stream `length` bytes from `offset` in pieces: constant, small memory."""
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


def _error_text(response: httpx.Response) -> str:
    """What an error response says: distribution's `{"errors": [{message, detail}]}` as
    "message: detail", else the body's text."""
    try:
        body = response.read()
    except (httpx.HTTPError, httpx.StreamError):
        return ""
    try:
        errors = json.loads(body)["errors"]
        text = "; ".join(
            ": ".join(part if isinstance(part, str) else json.dumps(part, sort_keys=True)
                      for part in (e.get("message"), e.get("detail")) if part)
            for e in errors
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        text = body.decode("utf-8", "replace").strip()
    return text


def _disk_full(said: str) -> bool:
    """distribution reports ENOSPC as the Go error text or, from its filesystem driver, as
    `{"Enclosed": {"Err": 28, ...}}` (a PathError with the bare errno)."""
    return "no space left on device" in said.lower() or re.search(
        rf'"Err": {errno.ENOSPC}\b', said) is not None


def _range_end(header: str) -> int:
    """`Range: 0-1234` (or `bytes=0-1234`) → 1234; no range (nothing received) → -1."""
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
