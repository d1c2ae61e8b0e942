"""Registry authentication as an httpx `Auth` generator: anonymous, Basic, and Bearer tokens.

`auth_flow` yields requests and receives responses; no I/O happens inside the class, so the
401 → token realm → retry dance is testable with `httpx.MockTransport`.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Generator
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True, kw_only=True)
class Challenge:
    """One parsed WWW-Authenticate challenge: scheme (lower case) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate header (RFC 7235): quoted strings, escapes, several params."""
    challenges: list[Challenge] = []
    i, n = 0, len(header)
    scheme: str | None = None
    params: dict[str, str] = {}

    def skip_ws(j: int) -> int:
        while j < n and header[j] in " \t,":
            j += 1
        return j

    while True:
        i = skip_ws(i)
        if i >= n:
            break
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and scheme is not None:
            j += 1
            while j < n and header[j] in " \t":
                j += 1
            if j < n and header[j] == '"':
                j += 1
                value_chars: list[str] = []
                while j < n and header[j] != '"':
                    if header[j] == "\\" and j + 1 < n:
                        j += 1
                    value_chars.append(header[j])
                    j += 1
                j += 1  # closing quote
                value = "".join(value_chars)
            else:
                vstart = j
                while j < n and header[j] not in " \t,":
                    j += 1
                value = header[vstart:j]
            params[token.lower()] = value
            i = j
        else:
            if scheme is not None:
                challenges.append(Challenge(scheme=scheme, params=params))
            scheme, params = token.lower(), {}
    if scheme is not None:
        challenges.append(Challenge(scheme=scheme, params=params))
    return challenges


class RegistryAuth(httpx.Auth):
    """Anonymous first; on 401 answer the server's challenge (Basic or Bearer) and retry once.

    Bearer tokens are cached per (realm, service, scope); Basic credentials are remembered once a
    server asked for them, so later requests go out authenticated without a 401 round trip.
    """

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self._username = username
        self._password = password
        self._tokens: dict[tuple[str, str, str], str] = {}
        self._basic_ok = False
        self._lock = threading.Lock()

    def _basic_header(self) -> str | None:
        if self._username is None:
            return None
        raw = f"{self._username}:{self._password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        hint = _scope_hint(request)
        with self._lock:
            basic_ok = self._basic_ok
            # Any cached token for exactly this scope (not only the last one fetched): parallel
            # uploads to several repositories each keep theirs, and a streamed body (a PATCH)
            # must never need the 401 → token → resend dance, which cannot replay it.
            token = next((t for k, t in self._tokens.items() if hint and k[2] == hint), None)
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        elif basic_ok and (basic := self._basic_header()) is not None:
            request.headers["Authorization"] = basic
        response = yield request
        if response.status_code != 401:
            return
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        for challenge in challenges:
            if challenge.scheme == "bearer" and "realm" in challenge.params:
                realm = challenge.params["realm"]
                service = challenge.params.get("service", "")
                scope = challenge.params.get("scope", "")
                cache_key = (realm, service, scope)
                with self._lock:
                    token = self._tokens.get(cache_key)
                if token is None:
                    query: dict[str, str] = {}
                    if service:
                        query["service"] = service
                    if scope:
                        query["scope"] = scope
                    token_request = httpx.Request("GET", realm, params=query)
                    if (basic := self._basic_header()) is not None:
                        token_request.headers["Authorization"] = basic
                    token_response = yield token_request
                    token_response.read()
                    if token_response.status_code != 200:
                        return
                    body = token_response.json()
                    token = body.get("token") or body.get("access_token")
                    if not isinstance(token, str):
                        return
                    with self._lock:
                        self._tokens[cache_key] = token
                request.headers["Authorization"] = f"Bearer {token}"
                yield request
                return
            if challenge.scheme == "basic" and (basic := self._basic_header()) is not None:
                request.headers["Authorization"] = basic
                retry = yield request
                if retry.status_code != 401:
                    with self._lock:
                        self._basic_ok = True
                return


def _scope_hint(request: httpx.Request) -> str:
    """The scope a request most likely needs; a cached token is reused only for that scope."""
    parts = request.url.path.split("/")
    if len(parts) >= 4 and parts[1] == "v2":
        for marker in ("blobs", "manifests", "tags"):
            if marker in parts:
                repo = "/".join(parts[2 : parts.index(marker)])
                action = "pull" if request.method in ("GET", "HEAD") else "pull,push"
                return f"repository:{repo}:{action}"
    return ""
