from __future__ import annotations

import base64

import httpx

from crossyard.registry.auth import RegistryAuth, parse_challenges


def test_parse_challenges_quoted_and_multiple() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="reg, one",'
        'scope="repository:a/b:pull,push", Basic realm="x \\"y\\""'
    )
    got = parse_challenges(header)
    assert [c.scheme for c in got] == ["bearer", "basic"]
    assert got[0].params == {
        "realm": "https://auth.example/token",
        "service": "reg, one",
        "scope": "repository:a/b:pull,push",
    }
    assert got[1].params == {"realm": 'x "y"'}


def test_anonymous_passes_through() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=RegistryAuth()) as client:
        assert client.get("https://r.example/v2/").status_code == 200
    assert "Authorization" not in seen[0].headers


def test_basic_challenge_then_remembered() -> None:
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    count = {"401": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") == expected:
            return httpx.Response(200)
        count["401"] += 1
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry Realm"'})

    auth = RegistryAuth("alice", "s3cret")
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        assert client.get("https://r.example/v2/").status_code == 200
        assert client.get("https://r.example/v2/").status_code == 200
    assert count["401"] == 1


def test_bearer_token_fetched_with_scope_and_cached() -> None:
    token_calls: list[httpx.Request] = []
    basic = "Basic " + base64.b64encode(b"bob:pw").decode()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            token_calls.append(request)
            assert request.headers["Authorization"] == basic
            return httpx.Response(200, json={"token": "T1"})
        if request.headers.get("Authorization") == "Bearer T1":
            return httpx.Response(200)
        return httpx.Response(
            401,
            headers={
                "WWW-Authenticate": 'Bearer realm="https://auth.example/token",'
                'service="registry.example",scope="repository:app:pull"'
            },
        )

    auth = RegistryAuth("bob", "pw")
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        url = "https://r.example/v2/app/manifests/latest"
        assert client.get(url).status_code == 200
        assert client.get(url).status_code == 200
    assert len(token_calls) == 1
    assert token_calls[0].url.params["service"] == "registry.example"
    assert token_calls[0].url.params["scope"] == "repository:app:pull"


def test_wrong_credentials_surface_401() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    with httpx.Client(
        transport=httpx.MockTransport(handler), auth=RegistryAuth("x", "y")
    ) as client:
        assert client.get("https://r.example/v2/").status_code == 401
