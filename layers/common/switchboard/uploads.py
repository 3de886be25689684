"""Uploads: presigned S3 uploads (PUT or multipart), confirmed progress, verification and
image processing, with pushes to every connection of the owner.

The bytes never pass through Lambda: the routes hand out presigned URLs and confirm what
S3 holds (ListParts, HeadObject); the processor, fed by S3 ObjectCreated events through
SQS, checks the stored object against what was declared (size, magic bytes) because a
presigned PUT does not enforce either, strips image metadata and makes a thumbnail.

Clients write to a staging key (``uploads/``) that is never served: a presigned PUT URL
stays usable until it expires, so the object there can change while it is checked. The
processor writes exactly the bytes it verified to a key only it can write (``files/``;
the routes' role, whose rights the presigned URLs carry, cannot), and that copy is what
``upload:get`` and ``upload:complete`` hand out. A complete upload never changes again.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.ratelimits import RateLimit, RateLimiter
from switchboard.dal.uploads import (
    ObjectStore,
    PartsRefused,
    StoredPart,
    UploadRecord,
    UploadRepository,
)
from switchboard.delivery import Delivery
from switchboard.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    conversation_not_found,
)
from switchboard.filetypes import IMAGE_TYPES, SNIFF_BYTES, normalize
from switchboard.media import AUDIO_TYPES, MEDIA_TYPES
from switchboard.observability import logger
from switchboard.protocol import PushData, push
from switchboard.router import Caller
from switchboard.wire import uploads as wire

if TYPE_CHECKING:
    from switchboard.calls.repository import CallRepository

MiB = 1024 * 1024
S3_MIN_PART_BYTES = 5 * MiB  # every part but the last (S3 refuses smaller ones)
S3_MAX_PART_BYTES = 5 * 1024 * MiB
S3_MAX_PARTS = 10_000
S3_MAX_PUT_BYTES = 5 * 1024 * MiB
KEY_PREFIX = "uploads/"  # the bucket notification's filter: processed outputs live elsewhere
FILE_PREFIX = "files/"  # the verified bytes: only the processor writes here
THUMBNAIL_PREFIX = "thumbnails/"
FAILED_RETENTION_SECONDS = 7 * 24 * 3600

# ---------------------------------------------------------------------- states
UPLOADING, UPLOADED, PROCESSING = "uploading", "uploaded", "processing"
COMPLETE, FAILED, ABORTED = "complete", "failed", "aborted"
ABORTABLE = frozenset({UPLOADING, UPLOADED})
PROCESSABLE = frozenset({UPLOADING, UPLOADED})
PROCESSING_LEASE_MS = 5 * 60 * 1000  # > the processor's 60 s timeout, < the 6 min redelivery
FINAL = frozenset({COMPLETE, FAILED, ABORTED})


@dataclass(frozen=True, slots=True)
class Limits:
    allowed_types: frozenset[str]
    max_bytes: int
    multipart_threshold: int
    part_bytes: int
    max_parts: int
    url_ttl: int
    download_ttl: int
    upload_ttl: int
    thumbnail_px: int = 256
    image_max_pixels: int = 40_000_000  # one frame's canvas
    image_max_total_pixels: int = 100_000_000  # canvas x frames
    image_max_frames: int = 1000
    # Pillow reads a whole image into memory (and more than its size while parsing it):
    # an image is capped far below the generic limit.
    image_max_bytes: int = 20 * 1024 * 1024
    # Audio/video is read whole too (its container parsed for the duration): the same
    # kind of cap as images, and a duration bound per purpose.
    media_max_bytes: int = 64 * 1024 * 1024
    voice_max_seconds: int = 300
    recording_max_seconds: int = 3 * 3600
    starts_per_user: int = 0  # upload:start per user per window (0: unlimited)
    start_window_seconds: int = 60
    min_bytes_per_second: int = 64 * 1024  # the slowest link a PUT URL's lifetime allows for

    def put_url_ttl(self, size: int) -> int:
        """A PUT URL lives as long as its upload needs at the slowest rate allowed (a
        minute at least, ``url_ttl`` at most): a leaked or kept URL soon stops working."""
        return min(self.url_ttl, 60 + math.ceil(size / self.min_bytes_per_second))


# ---------------------------------------------------------------------- part maths
def part_size_for(size: int, part_bytes: int, max_parts: int) -> int:
    """The part size: at least ``part_bytes`` and S3's 5 MiB, and big enough that the
    upload needs at most ``max_parts`` parts (rounded up to whole MiB; at most 5 GiB)."""
    floor = max(part_bytes, S3_MIN_PART_BYTES)
    needed = math.ceil(size / max(1, min(max_parts, S3_MAX_PARTS)))
    # S3 parts hold at most 5 GiB: past max_parts x 5 GiB, more parts it is.
    return min(max(floor, math.ceil(needed / MiB) * MiB), S3_MAX_PART_BYTES)


def part_count(size: int, part_size: int) -> int:
    return max(1, math.ceil(size / part_size))


def part_range(part_number: int, part_size: int, size: int) -> tuple[int, int]:
    """[start, end) bytes of a part (1-based)."""
    start = (part_number - 1) * part_size
    return start, min(start + part_size, size)


def percent(confirmed: int, size: int) -> int:
    """Whole percent, rounded down: 100 only when every byte is there."""
    if size <= 0 or confirmed >= size:
        return 100
    return min(99, confirmed * 100 // size)


def object_key(owner_id: str, upload_id: str, prefix: str = KEY_PREFIX) -> str:
    # Per user (a hash: user ids may hold any character) and unguessable (the upload id).
    owner = hashlib.sha256(owner_id.encode()).hexdigest()[:20]
    return f"{prefix}{owner}/{upload_id}"


def upload_id_from_key(key: str) -> str | None:
    parts = key.split("/")
    if len(parts) != 3 or f"{parts[0]}/" != KEY_PREFIX or not parts[2]:
        return None
    return parts[2]


def new_upload_id() -> str:
    return secrets.token_urlsafe(18)


def checked_content_type(declared: str, allowed: frozenset[str]) -> str:
    content_type = normalize(declared)
    if content_type not in allowed:
        raise BadRequest(
            f"content type {content_type[:64]!r} is not allowed",
            details=[{"field": "data.contentType", "message": f"allowed: {sorted(allowed)}"}],
        )
    return content_type


class UploadService:
    """The ``upload:*`` routes. See the module docstring."""

    def __init__(
        self,
        uploads: UploadRepository,
        store: ObjectStore,
        delivery: Delivery,
        limits: Limits,
        conversations: ConversationRepository,
        *,
        counters: RateLimiter | None = None,
        calls: Callable[[], CallRepository] | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = new_upload_id,
    ) -> None:
        self.uploads = uploads
        self.store = store
        self.delivery = delivery
        self.limits = limits
        self.conversations = conversations
        self.counters = counters
        # Built on the first recording's upload:start: the call code and its wire models
        # are off the upload function's cold path (recordings are rare).
        self._calls = calls
        self._clock = clock
        self._new_id = new_id

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # ------------------------------------------------------------------ actions
    def start(self, caller: Caller, data: wire.UploadStart) -> wire.UploadStarted:
        limits = self.limits
        content_type = checked_content_type(data.contentType, limits.allowed_types)
        if data.size > limits.max_bytes:
            raise PayloadTooLarge(
                f"{data.size} bytes is over the {limits.max_bytes}-byte upload limit",
                details={"maxBytes": limits.max_bytes},
            )
        if content_type in IMAGE_TYPES and data.size > limits.image_max_bytes:
            raise PayloadTooLarge(
                f"{data.size} bytes is over the {limits.image_max_bytes}-byte image limit",
                details={"maxBytes": limits.image_max_bytes},
            )
        if content_type in MEDIA_TYPES and data.size > limits.media_max_bytes:
            raise PayloadTooLarge(
                f"{data.size} bytes is over the {limits.media_max_bytes}-byte audio/video limit",
                details={"maxBytes": limits.media_max_bytes},
            )
        bound = self._bound_to(caller, data, content_type)
        now_ms = self._now_ms()
        self._count_start(caller, now_ms)
        upload_id = self._new_id()
        key = object_key(caller.user_id, upload_id)
        expires_at = now_ms // 1000 + limits.url_ttl
        multipart = data.size > min(limits.multipart_threshold, S3_MAX_PUT_BYTES)
        record = UploadRecord(
            uploadId=upload_id,
            ownerId=caller.user_id,
            key=key,
            fileName=data.fileName,
            contentType=content_type,
            size=data.size,
            purpose=data.purpose,
            method="multipart" if multipart else "put",
            state=UPLOADING,
            createdAt=now_ms,
            updatedAt=now_ms,
            expiresAt=now_ms // 1000 + limits.upload_ttl,
            conversationId=bound.conversation_id,
            callId=bound.call_id,
            maxDurationMs=bound.max_duration_ms,
        )
        if not multipart:
            self.uploads.create(record)
            logger.info("upload started", extra={"uploadId": upload_id, "method": "put"})
            ttl = limits.put_url_ttl(data.size)
            return wire.UploadStarted(
                uploadId=upload_id,
                method="put",
                # The size is signed into the URL (Content-Length): S3 refuses other sizes.
                url=self.store.presign_put(key, content_type, ttl, data.size),
                headers={"Content-Type": content_type},
                expiresAt=now_ms // 1000 + ttl,
            )
        size_per_part = part_size_for(data.size, limits.part_bytes, limits.max_parts)
        count = part_count(data.size, size_per_part)
        s3_upload_id = self.store.create_multipart(key, content_type)
        record = _replace(record, s3UploadId=s3_upload_id, partSize=size_per_part, partCount=count)
        try:
            self.uploads.create(record)
        except Exception:
            self.store.abort_multipart(key, s3_upload_id)  # no orphan multipart upload
            raise
        logger.info(
            "upload started",
            extra={"uploadId": upload_id, "method": "multipart", "parts": count},
        )
        return wire.UploadStarted(
            uploadId=upload_id,
            method="multipart",
            partSize=size_per_part,
            parts=[
                wire.PartUrl(
                    partNumber=n,
                    # Each part's exact length is signed into its URL: the parts add up
                    # to the declared size, never to 16 x 5 GB.
                    url=self.store.presign_part(
                        key,
                        s3_upload_id,
                        n,
                        limits.url_ttl,
                        _length(part_range(n, size_per_part, data.size)),
                    ),
                )
                for n in range(1, count + 1)
            ],
            expiresAt=expires_at,
        )

    def _bound_to(self, caller: Caller, data: wire.UploadStart, content_type: str) -> _Binding:
        """A voice message or a call recording: the conversation (and call) it is for, once
        the caller may post it there (checked before any URL is handed out)."""
        if data.purpose == "voice":
            assert data.conversationId is not None  # the wire model requires it
            if content_type not in AUDIO_TYPES:
                raise BadRequest(f"a voice message is audio ({sorted(AUDIO_TYPES)})")
            member = self.conversations.member(data.conversationId, caller.user_id)
            if member is None:  # a stranger learns nothing of the conversation
                raise conversation_not_found()
            if member.left_seq is not None:  # a former member posts nothing there
                raise Forbidden("you are no longer a member of this conversation")
            return _Binding(data.conversationId)
        if data.purpose == "recording":
            assert data.callId is not None
            if content_type not in MEDIA_TYPES:
                raise BadRequest(f"a recording is audio or video ({sorted(MEDIA_TYPES)})")
            from switchboard.calls.model import RECORDING_SLACK_MS, announced_recording_ms

            call = self._calls().get(data.callId) if self._calls is not None else None
            if call is None or caller.user_id not in call.participants:
                raise Forbidden("you are not a participant of this call")
            if caller.user_id not in call.recorded_by:
                # Consent: only a recording everyone was told about (call:recording).
                raise Forbidden("announce the recording with call:recording first")
            if call.conversation_id is None:
                raise BadRequest("the call has no conversation to post its recording in")
            # Leaving the conversation does not end one's part in its call: a former
            # member records nothing for it either.
            member = self.conversations.member(call.conversation_id, caller.user_id)
            if member is None or member.left_seq is not None:
                raise Forbidden("you are not a member of the call's conversation")
            # What everyone was told of: the recording may last as long as the caller was
            # announced as recording, no longer (a recorder that announced "stopped" and
            # went on recording cannot post the rest).
            announced = announced_recording_ms(call, caller.user_id, self._now_ms())
            return _Binding(call.conversation_id, data.callId, announced + RECORDING_SLACK_MS)
        return _Binding()

    def _count_start(self, caller: Caller, now_ms: int) -> None:
        """One conditional counter write per start: each upload costs a processor run."""
        if self.counters is None or not self.limits.starts_per_user:
            return
        rule = RateLimit(
            f"upload#user#{caller.user_id}",
            self.limits.starts_per_user,
            self.limits.start_window_seconds,
        )
        if not self.counters.consume(rule, now_ms):
            raise RateLimited(
                f"rate limit reached: at most {rule.limit} uploads per {rule.window_seconds} s",
                details={"retryAfterMs": rule.retry_after_ms(now_ms)},
            )

    def part_done(self, caller: Caller, data: wire.PartDone) -> wire.PartConfirmed:
        record = self._owned(caller, data.uploadId)
        if record.method != "multipart" or record.s3UploadId is None:
            raise BadRequest("this upload is a single PUT: it has no parts")
        if data.partNumber > (record.partCount or 0):
            raise BadRequest(
                f"part {data.partNumber} is outside the upload's {record.partCount} parts"
            )
        if record.state != UPLOADING:
            raise Conflict(f"the upload is {record.state}")
        parts = self.store.list_parts(record.key, record.s3UploadId)
        if parts is None:
            raise Conflict("the multipart upload no longer exists in S3")
        stored = parts.get(data.partNumber)
        if stored is None or stored.etag != data.etag.strip('"').lower():
            raise Conflict(f"part {data.partNumber} is not in S3 with that ETag")
        updated = self.uploads.confirm_part(
            record.uploadId, caller.user_id, data.partNumber, self._now_ms()
        )
        if updated is None:
            raise Conflict("the upload is no longer uploading")
        # Progress counts the parts the client reported and S3 confirmed, sized by S3.
        confirmed = sum(parts[n].size for n in updated.confirmedParts if n in parts)
        self.uploads.raise_progress(record.uploadId, confirmed)
        progress = wire.UploadProgress(
            uploadId=record.uploadId, percent=percent(confirmed, record.size), bytes=confirmed
        )
        self.delivery.to_users([caller.user_id], push(progress))
        return wire.PartConfirmed(**progress.model_dump(), partNumber=data.partNumber)

    def complete(self, caller: Caller, data: wire.UploadComplete) -> wire.UploadStateReply:
        record = self._owned(caller, data.uploadId)
        if record.state in (UPLOADED, PROCESSING, COMPLETE, FAILED):
            # A repeated complete, or the processor got there first (a PUT's S3 event can
            # beat the client's complete): the state says how it went. A PUT's devices
            # still get their 100 % (the protocol promises it whoever came first).
            if record.method == "put" and record.state != FAILED:
                self._push_put_progress(caller, record, record.bytes or record.size)
            return _state_reply(record.uploadId, record.state)
        if record.state != UPLOADING:
            raise Conflict(f"the upload is {record.state}")
        if record.method == "multipart":
            stored_bytes = self._complete_multipart(record, data)
            if stored_bytes is None:  # a racing complete finished it first
                return _state_reply(record.uploadId, self._owned(caller, data.uploadId).state)
        else:
            head = self.store.head(record.key)
            if head is None:
                # Or the processor got there first and, done, removed the staging object.
                current = self._owned(caller, data.uploadId)
                if current.state != UPLOADING:
                    return _state_reply(current.uploadId, current.state)
                raise Conflict("nothing was uploaded to the URL yet")
            stored_bytes = head[0]
        now_ms = self._now_ms()
        moved = self.uploads.transition(
            record.uploadId,
            [UPLOADING],
            UPLOADED,
            owner_id=caller.user_id,
            values={"uploadedAt": now_ms, "updatedAt": now_ms, "bytes": stored_bytes},
        )
        state = UPLOADED if moved else self._owned(caller, data.uploadId).state
        if record.method == "put":
            self._push_put_progress(caller, record, stored_bytes)
        logger.info("upload completed by client", extra={"uploadId": record.uploadId})
        return _state_reply(record.uploadId, state)

    def _push_put_progress(self, caller: Caller, record: UploadRecord, stored_bytes: int) -> None:
        self.delivery.to_users(
            [caller.user_id],
            push(
                wire.UploadProgress(
                    uploadId=record.uploadId,
                    percent=percent(stored_bytes, record.size),
                    bytes=stored_bytes,
                )
            ),
        )

    def _complete_multipart(self, record: UploadRecord, data: wire.UploadComplete) -> int | None:
        assert record.s3UploadId is not None and record.partCount is not None
        parts = self.store.list_parts(record.key, record.s3UploadId)
        if parts is None:
            return None
        wanted = range(1, record.partCount + 1)
        missing = [n for n in wanted if n not in parts]
        if missing:
            raise Conflict("parts are missing", details={"missingParts": missing[:100]})
        for claimed in data.parts or []:
            stored = parts.get(claimed.partNumber)
            if stored is None or stored.etag != claimed.etag.strip('"').lower():
                raise Conflict(f"part {claimed.partNumber} is not in S3 with that ETag")
        chosen: list[StoredPart] = [parts[n] for n in wanted]
        try:
            if self.store.complete_multipart(record.key, record.s3UploadId, chosen) is None:
                return None
        except PartsRefused as refused:
            raise Conflict(f"S3 refused the parts ({refused.code}): re-upload them") from None
        return sum(p.size for p in chosen)

    def abort(self, caller: Caller, data: wire.UploadRef) -> wire.UploadStateReply:
        record = self._owned(caller, data.uploadId)
        if record.state == ABORTED:
            return _state_reply(record.uploadId, ABORTED)
        now_ms = self._now_ms()
        moved = self.uploads.transition(
            record.uploadId,
            ABORTABLE,
            ABORTED,
            owner_id=caller.user_id,
            values={
                "abortedAt": now_ms,
                "updatedAt": now_ms,
                "expiresAt": now_ms // 1000 + FAILED_RETENTION_SECONDS,
            },
        )
        if moved is None:
            current = self._owned(caller, data.uploadId)
            if current.state != ABORTED:
                raise Conflict(f"the upload is {current.state}: it can no longer be aborted")
        if record.s3UploadId:
            self.store.abort_multipart(record.key, record.s3UploadId)
        self.store.delete(record.key)
        logger.info("upload aborted", extra={"uploadId": record.uploadId})
        return _state_reply(record.uploadId, ABORTED)

    def get(self, caller: Caller, data: wire.UploadGet) -> wire.UploadView:
        found = self.uploads.get(data.uploadId)
        if data.conversationId is not None:
            shared = self._shared(caller, found, data.conversationId)
            if shared is not None:
                return shared
        record = _owner_only(caller, found)
        urls: dict[str, Any] = {}
        if record.state == COMPLETE:
            urls = download_urls(self.store, record, self.limits.download_ttl, self._clock())
        error = None
        if record.state == FAILED:
            error = wire.UploadFailure(code=record.failureCode, message=record.failureMessage)
        return wire.UploadView(
            uploadId=record.uploadId,
            state=record.state,
            fileName=record.fileName,
            contentType=record.contentType,
            size=record.size,
            bytes=record.bytes,
            percent=percent(record.bytes, record.size),
            method=record.method,
            createdAt=record.createdAt,
            **urls,
            durationMs=record.durationMs,
            error=error,
        )

    def _shared(
        self, caller: Caller, record: UploadRecord | None, conversation_id: str
    ) -> wire.UploadView | None:
        """A member's view of an upload a message attached to ``conversation_id``: what a
        recipient needs to show it (None if it is not shared there with the caller)."""
        # The caller's member item is read whatever the upload says of the conversation
        # (and whether there is an upload at all): where a file was shared, or when, shows
        # in no read (a buyer who has the id of a seller's photo would probe
        # direct_id(seller, anyone) to learn whom else it went to; a former member would
        # learn it was shared again after they left).
        member = self.conversations.member(conversation_id, caller.user_id)
        if (
            record is None
            or member is None
            or record.state != COMPLETE
            or conversation_id not in record.sharedIn
        ):
            return None
        if member.left_seq is not None and not _shared_by(record, conversation_id, member.left_seq):
            return None
        return wire.UploadView(
            uploadId=record.uploadId,
            state=COMPLETE,
            fileName=record.fileName,
            contentType=record.contentType,
            size=record.size,
            conversationId=conversation_id,
            **download_urls(self.store, record, self.limits.download_ttl, self._clock()),
            durationMs=record.durationMs,
        )

    def _owned(self, caller: Caller, upload_id: str) -> UploadRecord:
        return _owner_only(caller, self.uploads.get(upload_id))


def _shared_by(record: UploadRecord, conversation_id: str, left_seq: int) -> bool:
    """Whether a former member (who left at ``left_seq``) read a message sharing the file:
    its first share there is at or below their leave. An upload shared before the seq was
    kept has none: refused (a former member's download of an old share is the one thing
    lost; finding the share's seq would take reading the conversation's messages)."""
    first = record.sharedSeq.get(conversation_id)
    return first is not None and first <= left_seq


def _owner_only(caller: Caller, record: UploadRecord | None) -> UploadRecord:
    # Someone else's upload is "not found", not "forbidden": ids are unguessable, and a
    # different answer would confirm to a stranger that a leaked id is real.
    if record is None or record.ownerId != caller.user_id:
        raise NotFound("no such upload")
    return record


def _length(byte_range: tuple[int, int]) -> int:
    return byte_range[1] - byte_range[0]


def _state_reply(upload_id: str, state: str) -> wire.UploadStateReply:
    return wire.UploadStateReply(uploadId=upload_id, state=state)


def download_urls(store: ObjectStore, record: UploadRecord, ttl: int, now: float) -> dict[str, Any]:
    # Only the verified copy is ever handed out (records completed before there was one
    # fall back to the staging key).
    served = record.fileKey or record.key
    urls: dict[str, Any] = {
        "url": store.presign_get(served, ttl, record.fileName),
        "urlExpiresAt": int(now) + ttl,
    }
    if record.thumbnailKey:
        urls["thumbnailUrl"] = store.presign_get(record.thumbnailKey, ttl)
    return urls


def _replace(record: UploadRecord, **changes: Any) -> UploadRecord:
    from dataclasses import replace

    return replace(record, **changes)


# ---------------------------------------------------------------------- processor
class UploadBusy(Exception):
    """Another run is checking this upload: the event is retried later (SQS)."""


@dataclass(frozen=True, slots=True)
class _Binding:
    """What a voice message or recording upload is for (none of it for other uploads)."""

    conversation_id: str | None = None
    call_id: str | None = None
    max_duration_ms: int | None = None


class Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UploadProcessor:
    """Handles one S3 ObjectCreated record: verify, process, tell the owner."""

    def __init__(
        self,
        uploads: UploadRepository,
        store: ObjectStore,
        delivery: Delivery,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.uploads = uploads
        self.store = store
        self.delivery = delivery
        self.limits = limits
        self._clock = clock

    def handle(self, bucket: str, key: str, event_etag: str) -> str:
        """Returns what happened (for logs and tests): ``complete``, ``failed``,
        ``skipped``, ``deleted``. Raises on transient errors (SQS retries the record)."""
        taken = self._take(bucket, key, event_etag)
        if isinstance(taken, str):
            return taken
        previous_state = taken.state
        owner = taken.ownerId
        self._push(owner, wire.UploadProcessing(uploadId=taken.uploadId))
        try:
            done = self._verify_and_process(taken)
        except Rejected as rejection:
            self._fail(taken, rejection)
            return "failed"
        except Exception:
            # Transient (S3/DynamoDB): hand the upload back so the retried event takes it.
            self.uploads.transition(taken.uploadId, [PROCESSING], previous_state)
            raise
        if done is None:  # the object vanished meanwhile: nothing to verify
            self.uploads.transition(taken.uploadId, [PROCESSING], previous_state)
            return "skipped"
        self._push(
            owner,
            wire.UploadCompletePush(
                uploadId=done.uploadId,
                **download_urls(self.store, done, self.limits.download_ttl, self._clock()),
                size=done.size if done.storedSize is None else done.storedSize,
                contentType=done.contentType,
                fileName=done.fileName,
                durationMs=done.durationMs,
            ),
        )
        logger.info(
            "upload complete",
            extra={"uploadId": done.uploadId, "size": done.storedSize, "type": done.contentType},
        )
        return "complete"

    def _take(self, bucket: str, key: str, event_etag: str) -> UploadRecord | str:
        """The upload this object belongs to, moved to ``processing`` (returned with the
        state it had), or what was done instead. Raises UploadBusy while another run
        checks the upload: the object may have changed since that run read it, so the
        event is retried (never dropped) once that run is over."""
        if bucket != self.store.bucket:
            logger.warning("event for another bucket ignored", extra={"bucket": bucket})
            return "skipped"
        upload_id = upload_id_from_key(key)
        record = self.uploads.get(upload_id) if upload_id else None
        if record is None or record.key != key:
            # No record (expired, or a key nobody handed out): the object is not wanted.
            logger.warning("object without an upload deleted", extra={"key": key})
            self.store.delete(key)
            return "deleted"
        if record.state in FINAL:
            # Aborted or failed: a PUT that finished late. Complete: its verified copy is
            # what is served, and whatever a kept PUT URL wrote since is never looked at.
            self.store.delete(key)
            return "deleted"
        now_ms = int(self._clock() * 1000)
        taken = self.uploads.transition(
            record.uploadId,
            PROCESSABLE,
            PROCESSING,
            values={"processingAt": now_ms, "updatedAt": now_ms},
            extra_condition=(
                # A processing upload nobody finished (its processor died, or handing it
                # back failed) is taken over once its lease ran out; the event comes back
                # after the queue's visibility timeout (6 min), longer than the lease.
                "OR (#state = :processing AND processingAt < :stale)",
                {},
                {":processing": PROCESSING, ":stale": now_ms - PROCESSING_LEASE_MS},
            ),
        )
        if taken is None:
            current = self.uploads.get(record.uploadId)
            if current is None or current.state in FINAL:
                self.store.delete(key)
                return "deleted"
            raise UploadBusy(record.uploadId)  # being checked by another run
        return _replace(taken, state=record.state)

    def _verify_and_process(self, record: UploadRecord) -> UploadRecord | None:
        from switchboard.filetypes import sniff

        head = self.store.head(record.key)
        if head is None:
            return None
        size, etag = head
        if size != record.size:
            raise Rejected(
                "size_mismatch", f"the stored object has {size} bytes, {record.size} were declared"
            )
        sniffed = sniff(self.store.read(record.key, etag, min(SNIFF_BYTES, size)))
        if not sniffed.matches(record.contentType):
            raise Rejected(
                "type_mismatch",
                f"the content is not {record.contentType} (it looks like {sniffed.best})",
            )
        file_key = object_key(record.ownerId, record.uploadId, FILE_PREFIX)
        values: dict[str, Any] = {"storedSize": size, "bytes": size, "fileKey": file_key}
        if record.contentType in IMAGE_TYPES:
            values.update(self._process_image(record, etag, file_key))
        elif record.contentType in MEDIA_TYPES:
            values.update(self._process_media(record, etag, file_key))
        else:
            # Only if the object is still the version checked above (a PUT since makes the
            # copy fail: SQS retries, and the retry checks the new object).
            self.store.copy_if_match(record.key, etag, file_key)
        now_ms = int(self._clock() * 1000)
        values.update({"etag": etag, "completedAt": now_ms, "updatedAt": now_ms})
        done = self.uploads.transition(
            record.uploadId, [PROCESSING], COMPLETE, values=values, remove=["expiresAt"]
        )
        if done is not None:
            self.store.delete(record.key)  # the staging object has served its purpose
        return done

    def _process_image(self, record: UploadRecord, etag: str, file_key: str) -> dict[str, Any]:
        from switchboard import images  # Pillow: only the processor loads it

        data = self.store.read(record.key, etag)
        budget = images.PixelBudget(
            max_pixels=self.limits.image_max_pixels,
            max_total_pixels=self.limits.image_max_total_pixels,
            max_frames=self.limits.image_max_frames,
        )
        try:
            result = images.process(
                data, record.contentType, thumbnail_px=self.limits.thumbnail_px, budget=budget
            )
        except images.InvalidImage as exc:
            raise Rejected("invalid_image", f"not a valid image: {exc}"[:300]) from None
        values: dict[str, Any] = {"width": result.width, "height": result.height}
        thumbnail_key = object_key(record.ownerId, record.uploadId, THUMBNAIL_PREFIX)
        self.store.put(thumbnail_key, result.thumbnail, result.thumbnail_type)
        values.update({"thumbnailKey": thumbnail_key, "thumbnailType": result.thumbnail_type})
        # The bytes that were checked (or their cleaned re-encoding), from memory: what is
        # served cannot be anything else.
        served = data if result.cleaned is None else result.cleaned
        self.store.put(file_key, served, record.contentType)
        values["storedSize"] = len(served)
        return values

    def _process_media(self, record: UploadRecord, etag: str, file_key: str) -> dict[str, Any]:
        from switchboard import media  # mutagen / ebmlite: only the processor loads them

        if record.size > self.limits.media_max_bytes:
            # upload:start refuses these; a limit lowered since still holds here.
            raise Rejected("too_large", f"over the {self.limits.media_max_bytes}-byte limit")
        data = self.store.read(record.key, etag)
        seconds = (
            self.limits.voice_max_seconds
            if record.purpose == "voice"
            else self.limits.recording_max_seconds
        )
        try:
            info = media.probe(data, record.contentType, max_duration_ms=seconds * 1000)
        except media.InvalidMedia as exc:
            raise Rejected("invalid_media", f"not a valid recording: {exc}"[:300]) from None
        if record.purpose == "voice" and info.has_video:
            raise Rejected("invalid_media", "a voice message has no video")
        if record.maxDurationMs is not None and info.duration_ms > record.maxDurationMs:
            raise Rejected(
                "invalid_media",
                f"the recording lasts {info.duration_ms} ms, longer than its recorder was "
                f"announced as recording in the call ({record.maxDurationMs} ms with margin)",
            )
        # The bytes that were checked, from memory: what is served cannot be anything else.
        self.store.put(file_key, data, record.contentType)
        return {"durationMs": info.duration_ms}

    def _fail(self, record: UploadRecord, rejection: Rejected) -> None:
        self.store.delete(record.key)
        now_ms = int(self._clock() * 1000)
        self.uploads.transition(
            record.uploadId,
            [PROCESSING],
            FAILED,
            values={
                "failureCode": rejection.code,
                "failureMessage": rejection.message,
                "failedAt": now_ms,
                "updatedAt": now_ms,
                "expiresAt": now_ms // 1000 + FAILED_RETENTION_SECONDS,
            },
        )
        logger.info("upload rejected", extra={"uploadId": record.uploadId, "code": rejection.code})
        self._push(
            record.ownerId,
            wire.UploadError(
                uploadId=record.uploadId, code=rejection.code, message=rejection.message
            ),
        )
        if record.callId is not None:
            # The recording of a call: the call's own error push too (the recorder's
            # call UI shows it without tracking the upload).
            from switchboard.wire.calls import CallError

            self._push(
                record.ownerId,
                CallError(
                    callId=record.callId,
                    code=rejection.code,
                    message=f"the recording was rejected: {rejection.message}"[:300],
                    uploadId=record.uploadId,
                ),
            )

    def _push(self, user_id: str, data: PushData) -> None:
        self.delivery.to_users([user_id], push(data))
