"""One table, no drift: every route in template.yaml reaches a function whose router
serves that action, every router action has a route, and every action and push type has
its model (the generated files' drift is tests/unit/test_wire_contract.py)."""

from __future__ import annotations

import json

from switchboard.protocol import PushData
from switchboard.wire import all_actions, all_pushes, all_replies
from switchboard.wire.sessions import KeepalivePong

from devserver.websocket_api import WebSocketApiConfig, render_mapping_template
from tests.integration.conftest import Stack


def template_routes(stack: Stack) -> dict[str, str | None]:
    """route key -> function logical id (None: API Gateway answers itself, MOCK)."""
    template = stack.template
    integrations = {
        lid: template.function_by_arn(str(template.resolve(props["IntegrationUri"])))
        if props["IntegrationType"] != "MOCK"
        else None
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
    actions = {key: fn for key, fn in routes.items() if not key.startswith("$") and fn}
    assert actions == served
    assert set(actions) == set(all_actions())
    # The only route no Lambda serves is the keep-alive, which API Gateway answers itself.
    assert {key for key, fn in routes.items() if fn is None} == {"keepalive"}


def test_the_keepalive_route_answers_a_pong_the_wire_defines_without_a_lambda(
    stack: Stack,
) -> None:
    config = WebSocketApiConfig.from_template(stack.template)
    assert config is not None
    route = config.routes["keepalive"]
    assert route.function is None and route.has_response and route.mock_response
    context = {"connectionId": "AbC1dEfGhIjKlM=", "requestTimeEpoch": 1795676871000}
    frame = json.loads(render_mapping_template(route.mock_response, context))
    assert frame["type"] == KeepalivePong.TYPE
    pong = KeepalivePong.model_validate(frame["data"], strict=True)
    assert (pong.connectionId, pong.serverTime) == ("AbC1dEfGhIjKlM=", 1795676871000)


def test_every_action_and_push_type_has_its_model(stack: Stack) -> None:
    # Every action has a reply model, and every router checks replies against that one.
    replies = all_replies()
    assert set(replies) == set(all_actions())
    checked = 0
    for function in {f for f in template_routes(stack).values() if f}:
        router = getattr(stack.handler(function), "router", None)
        for action in router.actions if router is not None else ():
            assert router.reply_model(action) is replies[action], action
            checked += 1
    assert checked == len(replies)
    # Every push model the wire package defines is registered under its type: push()
    # takes nothing else, so no push can leave the server without its model.
    defined: set[type[PushData]] = set()
    todo = list(PushData.__subclasses__())
    while todo:
        model = todo.pop()
        todo.extend(model.__subclasses__())
        if "TYPE" in vars(model) and model.__module__.startswith("switchboard.wire"):
            defined.add(model)
    assert defined == set(all_pushes().values())
    assert len(defined) >= 19


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
