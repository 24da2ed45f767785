"""Generated garbage at every clickstream and items endpoint: always a 4xx in the error format.

Bodies are random JSON, valid bodies with fields swapped for random values, huge and empty
strings, NaN, lone surrogates, NUL characters and deep nesting, under random content types.
SQLite only: storage differences are covered by the other tests; this one is about the API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clicktune.api.app import create_app
from clicktune.settings import Settings

API = "/api/v1"
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

strings = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec="utf-16", exclude_categories=()), max_size=5),  # surrogates too
    st.sampled_from(["", " ", "\x00", "x" * 300, "x" * 70_000, "o-0", "s-0", "e-0"]),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and infinity included
    st.sampled_from([0, -1, time.time(), time.time() * 1000, 1e308]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=12,
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/x-ndjson",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/vnd.api+json",
        "",
        ";;;",
    ]
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, json_values)


results = st.lists(
    st.fixed_dictionaries(
        {"object_id": maybe(st.sampled_from(["o-0", "o-1", "o-2"]))},
        optional={"rank": maybe(st.floats(0, 1)), "meta": json_values, "item_info": json_values},
    ),
    max_size=4,
)
event = st.fixed_dictionaries(
    {"event_id": maybe(st.sampled_from(["e-0", "e-1"])), "object_id": maybe(st.just("o-0"))},
    optional={
        "event_type": maybe(st.sampled_from(["click", "purchase"])),
        "created_at": maybe(st.just(time.time())),
        "meta": json_values,
    },
)
session = st.fixed_dictionaries(
    {
        "session_id": maybe(st.sampled_from(["s-0", "s-1", "s-new"])),
        "search_query": maybe(st.just("query")),
        "search_results": maybe(results),
    },
    optional={
        "search_meta": json_values,
        "user_id": maybe(st.just("u")),
        "created_at": maybe(st.just(time.time())),
        "events": maybe(st.lists(event, max_size=3)),
        "is_irrelevant": maybe(st.booleans()),
    },
)
item = st.fixed_dictionaries(
    {"object_id": maybe(st.sampled_from(["o-0", "o-1"]))},
    optional={"text": maybe(st.just("text")), "fields": json_values, "meta": json_values},
)
deeply_nested = "[" * 5000 + "]" * 5000
raw_bodies = st.sampled_from(
    [b"", b"{", b"null", b"[]", b"\xff\xfe", b"NaN", deeply_nested.encode(), b"1" * 5000, b"\n\n"]
)


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def bodies(structured: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(structured.map(encode), json_values.map(encode), raw_bodies)


def ndjson(structured: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    lines = st.lists(
        st.one_of(structured.map(encode), json_values.map(encode), raw_bodies), max_size=5
    )
    return lines.map(lambda parts: b"\n".join(parts))


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("no500")
    with TestClient(
        create_app(Settings(data_dir=Path(data), database_url=f"sqlite:///{data / 'db.sqlite'}")),
        raise_server_exceptions=False,
    ) as client:
        now = time.time()
        for n in range(2):
            client.post(
                f"{API}/clickstream/session",
                json={
                    "session_id": f"s-{n}",
                    "search_query": "query",
                    "search_results": [{"object_id": f"o-{i}"} for i in range(3)],
                    "created_at": now,
                },
            )
        client.put(f"{API}/items/o-0", json={"text": "text"})
        yield client


def check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "param"}
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]


def send(client: TestClient, method: str, url: str, body: bytes, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    check(client.request(method, url, content=body, headers=headers))


POSTS = [
    ("POST", "/clickstream/session", session),
    (
        "POST",
        "/clickstream/session/events",
        st.fixed_dictionaries(
            {
                "session_id": maybe(st.sampled_from(["s-0", "nope"])),
                "events": maybe(st.lists(event, max_size=3)),
            }
        ),
    ),
    (
        "POST",
        "/clickstream/session/irrelevant",
        st.fixed_dictionaries({"session_id": maybe(st.just("s-1"))}),
    ),
    (
        "POST",
        "/clickstream/internal/batch/release",
        st.fixed_dictionaries({}, optional={"release_id": maybe(st.just("r"))}),
    ),
    ("PUT", "/items/o-1", item),
    ("POST", "/items/bulk", st.fixed_dictionaries({"items": maybe(st.lists(item, max_size=3))})),
]


@pytest.mark.parametrize(("method", "path", "structured"), POSTS, ids=[p for _, p, _ in POSTS])
def test_json_endpoints_never_fail(
    app_client: TestClient, method: str, path: str, structured: st.SearchStrategy[Any]
) -> None:
    @EXAMPLES
    @given(body=bodies(structured), content_type=content_types)
    def run(body: bytes, content_type: str) -> None:
        send(app_client, method, f"{API}{path}", body, content_type)

    run()


@pytest.mark.parametrize(
    ("path", "structured"), [("/clickstream/import", session), ("/items/bulk", item)]
)
def test_ndjson_endpoints_never_fail(
    app_client: TestClient, path: str, structured: st.SearchStrategy[Any]
) -> None:
    @EXAMPLES
    @given(body=ndjson(structured), content_type=content_types)
    def run(body: bytes, content_type: str) -> None:
        send(app_client, "POST", f"{API}{path}", body, content_type)

    run()


short_strings = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec="utf-16", exclude_categories=()), max_size=5),
    st.sampled_from(["", " ", "\x00", "x" * 300]),
)
ids = st.one_of(short_strings, st.sampled_from(["s-0", "o-0", "a/b", "%00", "..", "?x=1"]))
query_values = st.one_of(
    short_strings, st.integers().map(str), st.sampled_from(["-1", "0", "1001", "1e3"])
)


@EXAMPLES
@given(identifier=ids, method=st.sampled_from(["GET", "DELETE", "PUT"]))
def test_path_ids_never_fail(app_client: TestClient, identifier: str, method: str) -> None:
    encoded = quote(identifier.encode("utf-8", "surrogatepass"), safe="")
    for url in (
        f"/clickstream/session/{encoded}",
        f"/clickstream/batches/{encoded}",
        f"/items/{encoded}",
    ):
        body = b'{"text": "t"}' if method == "PUT" else b""
        send(app_client, method, f"{API}{url}", body, "application/json")


@EXAMPLES
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "session_id",
                "batch_id",
                "after_number",
                "limit",
                "events_limit",
                "status",
                "offset",
                "after",
            ]
        ),
        query_values,
    )
)
def test_query_parameters_never_fail(app_client: TestClient, params: dict[str, str]) -> None:
    query = "&".join(
        f"{key}={quote(value.encode('utf-8', 'surrogatepass'), safe='')}"
        for key, value in params.items()
    )
    for path in (
        "/clickstream/session",
        "/clickstream/internal/batch/sessions",
        "/clickstream/batches",
        "/items",
    ):
        check(app_client.get(f"{API}{path}?{query}"))
