"""Analytics HTTP API (FastAPI behind Mangum on an API Gateway HTTP API), admin only.

Every route is one call into AnalyticsReport; the OpenAPI document is served at
/api/analytics/openapi.json."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from mangum import Mangum
from pydantic import BaseModel
from switchboard import services
from switchboard.analytics.access import NotAdmin, NotAuthenticated
from switchboard.analytics.answers import (
    Connections,
    Messages,
    Overview,
    QueueFigures,
    Sessions,
    Statistics,
    TimeSeries,
    UserSessions,
)
from switchboard.analytics.dashboard import dashboard_router
from switchboard.analytics.report import MAX_POINTS, SERIES
from switchboard.auth import Identity
from switchboard.config import AdminDashboardSettings, AnalyticsApiSettings
from switchboard.observability import logger

PREFIX = "/api/analytics"
Handler = TypeVar("Handler", bound=Callable[..., Any])


class Problem(BaseModel):
    """Every error this API writes itself: ``{"detail": "<what went wrong>"}``."""

    detail: str


# Answers every operation can give, documented on the app so that every route (those
# added later too) declares them: the OpenAPI document is checked against the live API.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "No bearer token, or not a valid one",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}},
    },
    403: {"model": Problem, "description": "The token has no admin role"},
    503: {"model": Problem, "description": "The metrics backend (DynamoDB, SQS) failed: retry"},
}
settings = AnalyticsApiSettings.from_env()
report = services.analytics_report(settings)
access = services.analytics_access(settings)
bearer = HTTPBearer(auto_error=False)


def admin(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    try:
        return access.check(credentials.credentials if credentials else None)
    except NotAuthenticated as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    except NotAdmin as exc:
        raise HTTPException(403, str(exc)) from None


api = APIRouter(prefix=PREFIX, dependencies=[Depends(admin)])


def get(path: str, **options: Any) -> Callable[[Handler], Handler]:
    """A GET route whose answer model (its return annotation) is serialised without the
    optional fields it left unset: an open session has no ``endedAt`` key at all."""
    return api.get(path, response_model_exclude_unset=True, **options)


Limit = Annotated[int, Query(ge=1, le=1000)]
UserId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^,\s]+$")]


@get("", summary="Everything: connections, messages, queues, sessions")
def overview() -> Overview:
    return report.overview()


@get("/connections")
def connections() -> Connections:
    return report.connections()


@get("/messages")
def messages() -> Messages:
    return report.messages()


@get("/queues", summary="Depth, in flight and DLQ depth of every queue")
def queues() -> dict[str, QueueFigures]:
    return report.queues()


@get("/sessions/active")
def active_sessions(limit: Limit = 100) -> Sessions:
    return report.active_sessions(limit)


@get("/sessions/recent")
def recent_sessions(limit: Limit = 50) -> Sessions:
    return report.recent_sessions(limit)


@get("/sessions/{userId}", summary="One user: sessions, durations, messages, typing")
def user_sessions(userId: UserId, limit: Limit = 20) -> UserSessions:
    return report.user(userId, limit)


@get("/statistics")
def statistics() -> Statistics:
    return report.statistics()


@get(
    "/timeseries",
    summary="One metric per minute or hour bucket",
    description=f"At most {MAX_POINTS} buckets: a longer range answers the {MAX_POINTS} "
    "that end at `to` (`truncated: true`, `from` moved). Times are clamped to "
    "1970-01-01T00:00Z .. 9999-12-31T23:59Z; `to` before `from` is an empty range.",
)
def timeseries(
    metric: Annotated[str, Query(pattern="^(" + "|".join(SERIES) + ")$")],
    start: Annotated[
        dt.datetime | None,
        Query(alias="from", description="default: `to` minus an hour (minute) or a day (hour)"),
    ] = None,
    end: Annotated[dt.datetime | None, Query(alias="to", description="default: now")] = None,
    bucket: Literal["minute", "hour"] = "minute",
) -> TimeSeries:
    to_ms = _epoch_ms(end) if end else int(time.time() * 1000)
    from_ms = (
        _epoch_ms(start) if start else to_ms - (3_600_000 if bucket == "minute" else 86_400_000)
    )
    return report.timeseries(metric, from_ms, to_ms, bucket)


def _epoch_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


app = FastAPI(
    title="Switchboard analytics",
    version="1.0.0",
    openapi_url=f"{PREFIX}/openapi.json",
    docs_url=f"{PREFIX}/docs",
    redoc_url=None,
    responses=ERRORS,
)
app.include_router(api)
app.include_router(dashboard_router(AdminDashboardSettings.from_env()))  # the admin dashboard


@app.exception_handler(ClientError)
@app.exception_handler(BotoCoreError)
async def aws_unavailable(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("analytics backend call failed")
    return JSONResponse({"detail": "the metrics backend is unavailable, retry"}, status_code=503)


handler = Mangum(app, lifespan="off")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response: dict[str, Any] = handler(event, context)
    return response
