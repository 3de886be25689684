"""One table, no drift: every route in template.yaml reaches a function whose router
serves that action, every router action has a route, and the committed JSON Schema is
what the models generate."""

from __future__ import annotations

import json
from pathlib import Path

from switchboard.wire import all_actions, schema

from tests.integration.conftest import ROOT, Stack


def template_routes(stack: Stack) -> dict[str, str]:
    """route key -> function logical id."""
    template = stack.template
    integrations = {
        lid: template.function_by_arn(str(template.resolve(props["IntegrationUri"])))
        for lid, props in template.of_type("AWS::ApiGatewayV2::Integration")
    }
    routes = {}
    for _, props in template.of_type("AWS::ApiGatewayV2::Route"):
        target = str(template.resolve(props["Target"])).removeprefix("integrations/")
        routes[props["RouteKey"]] = integrations[target]
    return routes


def test_every_route_is_served_and_every_action_routed(stack: Stack) -> None:
    routes = template_routes(stack)
    served: dict[str, str] = {}
    for function in {f for f in routes.values() if f}:
        router = getattr(stack.handler(function), "router", None)
        if router is not None:
            served.update(dict.fromkeys(router.actions, function))
    actions = {key: fn for key, fn in routes.items() if not key.startswith("$")}
    assert actions == served
    assert set(actions) == set(all_actions())


def test_every_route_that_replies_has_a_route_response(stack: Stack) -> None:
    template = stack.template
    with_response = {
        str(template.resolve(props["RouteId"]))
        for _, props in template.of_type("AWS::ApiGatewayV2::RouteResponse")
    }
    for lid, props in template.of_type("AWS::ApiGatewayV2::Route"):
        if props["RouteKey"] not in ("$connect", "$disconnect"):
            assert lid in with_response, lid
            assert props.get("RouteResponseSelectionExpression") == "$default", lid


def test_committed_schema_is_up_to_date() -> None:
    committed = json.loads(Path(ROOT / "docs/protocol.schema.json").read_text())
    assert committed == json.loads(json.dumps(schema())), (
        "regenerate: python -m switchboard.wire > docs/protocol.schema.json"
    )
