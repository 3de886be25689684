"""Property-based run against the analytics API's own OpenAPI document (Hypothesis builds
requests from each operation's parameter schemas, valid and invalid): never a 5xx, every
answer a JSON body, every 4xx explained."""

from __future__ import annotations

import datetime as dt
import json
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import FakeContext, Stack, token_for
from tests.integration.test_analytics import admin_token, http_event

EXAMPLES_PER_OPERATION = 60


@pytest.fixture(scope="module")
def api(stack: Stack) -> ModuleType:
    return stack.handler("AnalyticsApiFunction")


@pytest.fixture(scope="module")
def schema(api: ModuleType) -> dict[str, Any]:
    response = api.lambda_handler(http_event("/api/analytics/openapi.json"), FakeContext())
    assert response["statusCode"] == 200
    document: dict[str, Any] = json.loads(response["body"])
    return document


def _value_strategy(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """Values as they travel in a URL: text. Valid ones from the schema, plus junk."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    schema = options[0] if options else {}
    junk = st.text(max_size=40)
    if "enum" in schema:
        return st.one_of(st.sampled_from([str(v) for v in schema["enum"]]), junk)
    if schema.get("type") == "integer":
        low, high = schema.get("minimum", -(10**6)), schema.get("maximum", 10**6)
        return st.one_of(st.integers(low - 5, high + 5).map(str), junk)
    if schema.get("format") == "date-time":
        # Recent times most of the time, but also year 1 and 9999 (range errors are 4xx)
        recent = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 1, 1))
        return st.one_of(
            recent.map(lambda d: d.isoformat() + "Z"),
            st.datetimes().map(lambda d: d.isoformat() + "Z"),
            st.integers(-(10**12), 10**13).map(str),
            junk,
        )
    if "pattern" in schema:
        return st.one_of(st.from_regex(schema["pattern"], fullmatch=True), junk)
    return junk


def _operations(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [
        (path, operation.get("parameters", []))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method == "get"
    ]


def _request(path: str, parameters: list[dict[str, Any]]) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        url, query = path, []
        for parameter in parameters:
            required = parameter.get("required", False)
            if not required and draw(st.booleans()):
                continue
            value = draw(_value_strategy(parameter.get("schema", {})))
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", quote(value or "x", safe=""))
            else:
                query.append((parameter["name"], value))
        if draw(st.booleans()):
            query.append((draw(st.text(min_size=1, max_size=8)), draw(st.text(max_size=8))))
        return url + ("?" + urlencode(query) if query else "")

    return build()


def test_schema_has_operations(schema: dict[str, Any]) -> None:
    assert len(_operations(schema)) == 9


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        node = document["components"]["schemas"][name]
    return node


def _untyped(document: dict[str, Any], node: dict[str, Any], seen: set[str]) -> list[str]:
    """Where a schema says nothing of a body: an object without properties (a bare
    ``dict[str, Any]``), or a value of any type."""
    if "$ref" in node:
        if node["$ref"] in seen:
            return []
        seen.add(node["$ref"])
    node = _resolve(document, node)
    found: list[str] = []
    for option in node.get("anyOf", []):
        found += _untyped(document, option, seen)
    if "anyOf" in node:
        return found
    kind = node.get("type")
    if kind is None:
        return [str(node)]
    if kind == "object":
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        if not properties and not isinstance(extra, dict):
            return [str(node)]
        for child in [*properties.values(), *([extra] if isinstance(extra, dict) else [])]:
            found += _untyped(document, child, seen)
    if kind == "array":
        found += _untyped(document, node.get("items", {}), seen)
    return found


def test_every_answer_is_described_to_its_last_field(schema: dict[str, Any]) -> None:
    """The document describes the real bodies: every 200 answer is a model whose every
    field has a type (no free-form object anywhere in it)."""
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            body = operation["responses"]["200"]["content"]["application/json"]["schema"]
            assert _untyped(schema, body, set()) == [], (method, path)


@pytest.mark.parametrize("index", range(9))
def test_no_request_built_from_the_schema_gets_a_5xx(
    api: ModuleType, schema: dict[str, Any], index: int
) -> None:
    path, parameters = _operations(schema)[index]
    token = admin_token()

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        derandomize=True,
    )
    @given(url=_request(path, parameters), who=st.sampled_from(["admin", "user", "none"]))
    def check(url: str, who: str) -> None:
        credential = {"admin": token, "user": token_for("someone", ()), "none": None}[who]
        response = api.lambda_handler(http_event(url, credential), FakeContext())
        status = int(response["statusCode"])
        assert status < 500, (url, response)
        body = json.loads(response["body"])
        if who == "none":
            assert status == 401
        elif who == "user":
            assert status == 403
        elif status >= 400:
            assert status in (404, 422), (url, body)
            assert body["detail"], body
        else:
            assert isinstance(body, dict)

    check()
