"""Uploads: presigned PUT / multipart uploads straight to S3, tracked and verified."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from switchboard.protocol import WireModel
from switchboard.wire.messaging import ConversationId

# secrets.token_urlsafe(18): 24 URL-safe characters; a little slack for future formats.
UploadId = Annotated[
    str, StringConstraints(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
PartNumber = Annotated[int, Field(ge=1, le=10_000)]
# S3 ETags are hex MD5s (with "-<parts>" for multipart objects); quotes are optional.
ETag = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r'^"?[A-Za-z0-9-]+"?$')
]


class UploadStart(WireModel):
    fileName: str = Field(min_length=1, max_length=255)
    contentType: str = Field(min_length=3, max_length=128)
    size: int = Field(ge=1, le=5 * 1024**4)  # S3's maximum object size; config lowers it
    purpose: Literal["attachment", "listing", "avatar"] = "attachment"


class PartDone(WireModel):
    uploadId: UploadId
    partNumber: PartNumber
    etag: ETag


class CompletedPart(WireModel):
    partNumber: PartNumber
    etag: ETag


class UploadComplete(WireModel):
    uploadId: UploadId
    parts: list[CompletedPart] | None = Field(default=None, max_length=10_000)


class UploadRef(WireModel):
    uploadId: UploadId


class UploadGet(UploadRef):
    """``conversationId``: a member of a conversation that a message attached the upload
    to asks through it (the owner needs none)."""

    conversationId: ConversationId | None = None


ACTIONS: dict[str, type[WireModel]] = {
    "upload:start": UploadStart,
    "upload:part-done": PartDone,
    "upload:complete": UploadComplete,
    "upload:abort": UploadRef,
    "upload:get": UploadGet,
}
