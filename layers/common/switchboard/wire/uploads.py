"""Uploads: presigned PUT / multipart uploads straight to S3, tracked and verified."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from switchboard.protocol import Omitted, PushData, WireData, WireModel
from switchboard.wire.ids import ConversationId

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
    """``purpose`` "voice": a voice message for ``conversationId`` (a member's, audio
    only); "recording": a recording of ``callId`` (by a participant who announced it with
    ``call:recording``), for the call's conversation."""

    fileName: str = Field(min_length=1, max_length=255)
    contentType: str = Field(min_length=3, max_length=128)
    size: int = Field(ge=1, le=5 * 1024**4)  # S3's maximum object size; config lowers it
    purpose: Literal["attachment", "listing", "avatar", "voice", "recording"] = "attachment"
    conversationId: ConversationId | None = None
    callId: (
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
        | None
    ) = None

    @model_validator(mode="after")
    def _purpose_needs(self) -> "UploadStart":
        if self.purpose == "voice" and (self.conversationId is None or self.callId is not None):
            raise ValueError("a voice upload needs conversationId (and no callId)")
        if self.purpose == "recording" and (self.callId is None or self.conversationId):
            raise ValueError("a recording upload needs callId (and no conversationId)")
        if self.purpose not in ("voice", "recording") and (self.callId or self.conversationId):
            raise ValueError("conversationId/callId are for voice and recording uploads")
        return self


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


# ---------------------------------------------------------------------- replies and pushes
UploadState = Literal["uploading", "uploaded", "processing", "complete", "failed", "aborted"]


class PartUrl(WireData):
    partNumber: int
    url: str


class UploadStarted(WireData):
    """``method`` "put": one PUT to ``url`` with ``headers``; "multipart": a PUT of each
    part (``partSize`` bytes, the last one shorter) to its URL, each confirmed with
    ``upload:part-done``."""

    uploadId: str
    method: Literal["put", "multipart"]
    url: Omitted[str] = None
    headers: Omitted[dict[str, str]] = None
    partSize: Omitted[int] = None
    parts: Omitted[list[PartUrl]] = None
    expiresAt: int = Field(description="when the URLs expire, epoch seconds")


class UploadProgress(PushData):
    TYPE = "upload:progress"
    uploadId: str
    percent: int
    bytes: int


class PartConfirmed(WireData):
    uploadId: str
    percent: int
    bytes: int
    partNumber: int


class UploadStateReply(WireData):
    """``upload:complete`` and ``upload:abort``."""

    uploadId: str
    state: UploadState


class UploadFailure(WireData):
    code: str | None
    message: str | None


class UploadView(WireData):
    """``upload:get``: the owner's view (bytes, percent, method, createdAt, error) or, asked
    through ``conversationId``, a member's view of a completed upload shared there."""

    uploadId: str
    state: UploadState
    fileName: str
    contentType: str
    size: int
    bytes: Omitted[int] = None
    percent: Omitted[int] = None
    method: Omitted[Literal["put", "multipart"]] = None
    createdAt: Omitted[int] = None
    conversationId: Omitted[str] = None
    url: Omitted[str] = Field(default=None, description="download URL, once complete")
    urlExpiresAt: Omitted[int] = None
    thumbnailUrl: Omitted[str] = None
    durationMs: Omitted[int] = Field(default=None, description="audio/video, from the container")
    error: Omitted[UploadFailure] = None


class UploadProcessing(PushData):
    TYPE = "upload:processing"
    uploadId: str


class UploadCompletePush(PushData):
    TYPE = "upload:complete"
    uploadId: str
    url: str
    urlExpiresAt: int
    thumbnailUrl: Omitted[str] = None
    size: int
    contentType: str
    fileName: str
    durationMs: Omitted[int] = Field(
        default=None, description="audio/video: read from the container; attach it with this"
    )


class UploadError(PushData):
    TYPE = "upload:error"
    uploadId: str
    code: str
    message: str


ACTIONS: dict[str, type[WireModel]] = {
    "upload:start": UploadStart,
    "upload:part-done": PartDone,
    "upload:complete": UploadComplete,
    "upload:abort": UploadRef,
    "upload:get": UploadGet,
}
REPLIES: dict[str, type[WireData]] = {
    "upload:start": UploadStarted,
    "upload:part-done": PartConfirmed,
    "upload:complete": UploadStateReply,
    "upload:abort": UploadStateReply,
    "upload:get": UploadView,
}
PUSHES: tuple[type[PushData], ...] = (
    UploadProgress,
    UploadProcessing,
    UploadCompletePush,
    UploadError,
)
