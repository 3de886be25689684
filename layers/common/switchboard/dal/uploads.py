"""Uploads table (PK uploadId; TTL ``expiresAt`` on unfinished uploads; stream
NEW_AND_OLD_IMAGES for analytics) and the uploads bucket.

Every state change is one conditional UpdateItem (expected state *and* owner), so two
racing requests, or a request racing the processor, can never both win a transition.
The record keeps what analytics aggregates: state, size, contentType, method, purpose,
timestamps and the failure code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from switchboard.dal.base import DynamoRepository
from switchboard.dal.items import (
    carries_token,
    from_item,
    is_condition_failure,
    to_item,
    to_value,
    write_token,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


# An upload's first share in a conversation: the attribute ``sharedSeq#<conversationId>``
# (top level: a nested map entry cannot be set where the map does not exist yet, as on
# items written before it was kept, and the send's Update must not fail there).
SHARED_SEQ = "sharedSeq#"
# How many conversations one upload may be shared in. Each share stays on the upload's
# item (its id in ``sharedIn``, its first seq as an attribute: about 85 bytes), and the item
# must stay far below DynamoDB's 400 KB: past it the send's transaction fails (about 4,800
# conversations), and well before, every share's Update is charged by the item's size (2
# write units per KB in a transaction) and every download's read by it too. Shared in as
# many already, the file is refused for a new conversation (the sender uploads it again);
# sending it again where it is shared changes nothing and is accepted.
MAX_SHARES = 1000


def shared_seq_attribute(conversation_id: str) -> str:
    return SHARED_SEQ + conversation_id


@dataclass(frozen=True, slots=True)
class UploadRecord:
    uploadId: str
    ownerId: str
    key: str
    fileName: str
    contentType: str
    size: int
    purpose: str
    method: str  # "put" | "multipart"
    state: str
    createdAt: int  # epoch ms
    updatedAt: int
    s3UploadId: str | None = None
    partSize: int | None = None
    partCount: int | None = None
    bytes: int = 0  # confirmed bytes (ListParts) / stored bytes once uploaded
    etag: str | None = None  # of the verified object
    fileKey: str | None = None  # the verified bytes, written by the processor: what is served
    thumbnailKey: str | None = None
    thumbnailType: str | None = None
    width: int | None = None
    height: int | None = None
    storedSize: int | None = None
    failureCode: str | None = None
    failureMessage: str | None = None
    uploadedAt: int | None = None
    processingAt: int | None = None
    completedAt: int | None = None
    failedAt: int | None = None
    abortedAt: int | None = None
    expiresAt: int | None = None  # epoch seconds (DynamoDB TTL); absent once complete
    confirmedParts: frozenset[int] = field(default_factory=frozenset)
    # Conversations a message of the owner's attached it to: their members may download it.
    sharedIn: frozenset[str] = field(default_factory=frozenset)
    # The seq of its first share in each of them (an attribute per conversation, named
    # SHARED_SEQ + id: kept by the send's own Update, see share_update): a former member
    # may download it only if that seq is at or below their leave. Shares stored before
    # there was one have none: for current members only.
    sharedSeq: Mapping[str, int] = field(default_factory=dict)
    # A voice message or call recording: the conversation it is for (checked when it is
    # started and again when attached), the call, and the duration read from the container.
    conversationId: str | None = None
    callId: str | None = None
    durationMs: int | None = None
    # A recording: the longest it may last (its recorder's announced recording time, with
    # margin, when the upload started).
    maxDurationMs: int | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> UploadRecord:
        values = from_item(item)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in values.items() if k in known}
        data["confirmedParts"] = frozenset(int(p) for p in values.get("confirmedParts", ()))
        data["sharedIn"] = frozenset(str(c) for c in values.get("sharedIn", ()))
        data["sharedSeq"] = {
            name.removeprefix(SHARED_SEQ): int(seq)
            for name, seq in values.items()
            if name.startswith(SHARED_SEQ)
        }
        return cls(**data)

    def to_item(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        parts = values.pop("confirmedParts")
        shared = values.pop("sharedIn")
        shared_seq = values.pop("sharedSeq")
        item = to_item(values)
        if shared:
            item["sharedIn"] = {"SS": sorted(shared)}
        for conversation_id, seq in shared_seq.items():
            item[shared_seq_attribute(conversation_id)] = {"N": str(seq)}
        if parts:
            item["confirmedParts"] = {"NS": [str(p) for p in sorted(parts)]}
        return item


class UploadRepository(DynamoRepository):
    """See the module docstring."""

    def create(self, record: UploadRecord) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=record.to_item(),
            ConditionExpression="attribute_not_exists(uploadId)",
        )

    def share_update(
        self,
        upload_id: str,
        owner_id: str,
        conversation_id: str,
        seq: int,
        *,
        file_name: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        kind: str | None = None,
        duration_ms: int | None = None,
    ) -> dict[str, Any]:
        """The Update, in a send's transaction, that attaches an upload to a conversation
        (its members may then download it). Its condition is the check: the sender's own,
        complete upload, and what the message says of it (name, type, size) is true; a
        voice message or recording was uploaded as one, for this conversation, and its
        duration is the one the processor read from the container; a conversation more
        only while it is shared in fewer than MAX_SHARES.

        It also keeps ``seq`` (the message's) as the first share there, unless one is
        kept already: a former member gets the file only if shared at or below their
        leave (uploads.py). No read, no write more: the same Update."""
        conditions = [
            "ownerId = :owner",
            "#state = :complete",
            # (free: the same condition) the item's growth is bounded, see MAX_SHARES
            "(attribute_not_exists(sharedIn) OR size(sharedIn) < :most"
            " OR contains(sharedIn, :here))",
        ]
        names = {"#state": "state", "#first": shared_seq_attribute(conversation_id)}
        values: dict[str, Any] = {
            ":owner": {"S": owner_id},
            ":complete": {"S": "complete"},
            ":conversation": {"SS": [conversation_id]},
            ":seq": {"N": str(seq)},
            ":most": {"N": str(MAX_SHARES)},
            ":here": {"S": conversation_id},
        }
        for name, value in (("fileName", file_name), ("contentType", content_type)):
            if value is not None:
                conditions.append(f"{name} = :{name}")
                values[f":{name}"] = {"S": value}
        if size is not None:
            conditions.append("#size = :size")
            names["#size"] = "size"
            values[":size"] = {"N": str(size)}
        if kind in ("voice", "recording"):
            conditions += [
                "purpose = :purpose",
                "conversationId = :for",
                "durationMs = :duration",
            ]
            values[":purpose"] = {"S": kind}
            values[":for"] = {"S": conversation_id}
            values[":duration"] = {"N": str(duration_ms if duration_ms is not None else -1)}
        return {
            "TableName": self.table,
            "Key": {"uploadId": {"S": upload_id}},
            "UpdateExpression": (
                "ADD sharedIn :conversation SET #first = if_not_exists(#first, :seq)"
            ),
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def get(self, upload_id: str) -> UploadRecord | None:
        item = self.client.get_item(
            TableName=self.table, Key={"uploadId": {"S": upload_id}}, ConsistentRead=True
        ).get("Item")
        return UploadRecord.from_item(item) if item else None

    def transition(
        self,
        upload_id: str,
        from_states: Iterable[str],
        to_state: str,
        *,
        owner_id: str | None = None,
        values: dict[str, Any] | None = None,
        remove: Iterable[str] = (),
        extra_condition: tuple[str, dict[str, str], dict[str, Any]] | None = None,
    ) -> UploadRecord | None:
        """Moves the upload to ``to_state`` if it is in one of ``from_states`` (and owned by
        ``owner_id``); sets ``values``. None if the condition did not hold."""
        names = {"#state": "state"}
        attr_values: dict[str, Any] = {":to": to_value(to_state)}
        sets = ["#state = :to"]
        for i, (name, value) in enumerate((values or {}).items()):
            names[f"#v{i}"] = name
            attr_values[f":v{i}"] = to_value(value)
            sets.append(f"#v{i} = :v{i}")
        expression = "SET " + ", ".join(sets)
        removed = list(remove)
        if removed:
            for i, name in enumerate(removed):
                names[f"#r{i}"] = name
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
        states = list(from_states)
        for i, state in enumerate(states):
            attr_values[f":f{i}"] = to_value(state)
        condition = "#state IN (" + ", ".join(f":f{i}" for i in range(len(states))) + ")"
        if owner_id is not None:
            condition += " AND ownerId = :owner"
            attr_values[":owner"] = to_value(owner_id)
        if extra_condition is not None:
            extra, extra_names, extra_values = extra_condition
            condition = f"({condition}) {extra}"
            names.update(extra_names)
            attr_values.update({k: to_value(v) for k, v in extra_values.items()})
        return self._update(
            upload_id,
            expression,
            condition,
            names,
            attr_values,
            possible=lambda record: record.state in states,
        )

    def confirm_part(
        self, upload_id: str, owner_id: str, part_number: int, now_ms: int
    ) -> UploadRecord | None:
        """Adds a confirmed part; the returned record holds every part confirmed so far
        (ADDs are serialised, so of two racing confirmations the later sees both).
        None if the upload is not the owner's or no longer uploading."""
        return self._update(
            upload_id,
            "SET updatedAt = :now ADD confirmedParts :p",
            "#state = :uploading AND ownerId = :owner",
            {"#state": "state"},
            {
                ":now": to_value(now_ms),
                ":p": {"NS": [str(part_number)]},
                ":uploading": to_value("uploading"),
                ":owner": to_value(owner_id),
            },
        )

    def raise_progress(self, upload_id: str, confirmed_bytes: int) -> None:
        """``bytes`` only moves forward (a slower racing request cannot lower it)."""
        self._update(
            upload_id,
            "SET #bytes = :b",
            "#bytes < :b",
            {"#bytes": "bytes"},
            {":b": to_value(confirmed_bytes)},
        )

    def _update(
        self,
        upload_id: str,
        expression: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        *,
        possible: Callable[[UploadRecord], bool] | None = None,
    ) -> UploadRecord | None:
        """``possible``: whether the item could still meet the condition; when every
        answer was lost and the write is not ours, an item past that point means refused
        (None), else the error is raised (the caller retries)."""
        # Every write adds a fresh token to the item's `ops` set: when an answer is lost
        # and botocore's retry finds the condition no longer true (or no answer comes at
        # all), the token says whether the first attempt landed - even if another writer
        # (the processor, a racing request) has written since. An upload sees a few dozen
        # writes at most, so the set stays small.
        token = write_token()
        if " ADD " in f" {expression}":
            expression = f" {expression}".replace(" ADD ", " ADD #ops :op, ", 1).strip()
        else:
            expression = f"{expression} ADD #ops :op"
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key={"uploadId": {"S": upload_id}},
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(uploadId) AND ({condition})",
                ExpressionAttributeNames={**names, "#ops": "ops"},
                ExpressionAttributeValues={**values, ":op": {"SS": [token]}},
                ReturnValues="ALL_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            # The condition failed, or every attempt's answer was lost (5xx, timeouts):
            # either way the write may be ours.
            item = self.client.get_item(
                TableName=self.table, Key={"uploadId": {"S": upload_id}}, ConsistentRead=True
            ).get("Item")
            if item and carries_token(item, token, "ops"):
                return UploadRecord.from_item(item)
            if isinstance(exc, ClientError) and is_condition_failure(exc):
                return None
            if item is None or (
                possible is not None and not possible(UploadRecord.from_item(item))
            ):
                return None  # not ours, and the item is past the point it could be: refused
            raise
        return UploadRecord.from_item(response["Attributes"])


# ---------------------------------------------------------------------- the bucket
@cache
def s3_client() -> S3Client:
    # SigV4 presigning; "auto" addressing gives virtual-hosted URLs on AWS and path-style
    # URLs on a custom endpoint (the devserver's moto), which a browser can reach.
    return boto3.client(
        "s3",
        config=Config(
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=2,
            read_timeout=30,
        ),
    )


@dataclass(frozen=True, slots=True)
class StoredPart:
    part_number: int
    etag: str
    size: int


class PartsRefused(Exception):
    """S3 would not assemble the parts (one too small, or not the uploaded one)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def bare_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


class ObjectStore:
    """The uploads bucket: presigned URLs, multipart bookkeeping, verification reads."""

    def __init__(self, bucket: str, *, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = s3_client()
        return self._client

    # ------------------------------------------------------------------ presigning
    # Content-Length is a signed header of the PUT and part URLs: S3 refuses a body of
    # any other length (a presigned PUT does not otherwise bound what is sent).
    def presign_put(self, key: str, content_type: str, ttl: int, content_length: int) -> str:
        return self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": content_length,
            },
            ExpiresIn=ttl,
        )

    def presign_part(
        self, key: str, s3_upload_id: str, part_number: int, ttl: int, content_length: int
    ) -> str:
        return self.client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "UploadId": s3_upload_id,
                "PartNumber": part_number,
                "ContentLength": content_length,
            },
            ExpiresIn=ttl,
        )

    def presign_get(self, key: str, ttl: int, file_name: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if file_name:
            safe = "".join(c if c.isalnum() or c in "._- " else "_" for c in file_name)
            params["ResponseContentDisposition"] = f'inline; filename="{safe}"'
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl)

    # ------------------------------------------------------------------ multipart
    def create_multipart(self, key: str, content_type: str) -> str:
        response = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type
        )
        return response["UploadId"]

    def list_parts(self, key: str, s3_upload_id: str) -> dict[int, StoredPart] | None:
        """Every uploaded part; None if the multipart upload no longer exists."""
        parts: dict[int, StoredPart] = {}
        marker = 0
        try:
            while True:
                response = self.client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=s3_upload_id, PartNumberMarker=marker
                )
                for part in response.get("Parts", []):
                    number = int(part["PartNumber"])
                    parts[number] = StoredPart(number, bare_etag(part["ETag"]), int(part["Size"]))
                if not response.get("IsTruncated"):
                    return parts
                marker = int(response["NextPartNumberMarker"])
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                return None
            raise

    def complete_multipart(
        self, key: str, s3_upload_id: str, parts: list[StoredPart]
    ) -> str | None:
        """The object's ETag; None if the multipart upload is already gone (completed by a
        racing request, or aborted). Raises PartsRefused if S3 refuses the parts."""
        try:
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=s3_upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.part_number, "ETag": f'"{p.etag}"'} for p in parts]
                },
            )
        except ClientError as exc:
            code = _code(exc)
            if code == "NoSuchUpload":
                return None
            if code in ("EntityTooSmall", "InvalidPart", "InvalidPartOrder"):
                raise PartsRefused(code) from None
            raise
        return bare_etag(response.get("ETag", ""))

    def abort_multipart(self, key: str, s3_upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=s3_upload_id)
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise

    # ------------------------------------------------------------------ objects
    def head(self, key: str) -> tuple[int, str] | None:
        """(size, etag) of the object, None if there is none."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(response["ContentLength"]), bare_etag(response.get("ETag", ""))

    def read(self, key: str, etag: str, max_bytes: int | None = None) -> bytes:
        """The object (or its first ``max_bytes``), only in the version that was checked."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "IfMatch": f'"{etag}"'}
        if max_bytes is not None:
            kwargs["Range"] = f"bytes=0-{max_bytes - 1}"
        return self.client.get_object(**kwargs)["Body"].read()

    def put(self, key: str, data: bytes, content_type: str) -> str:
        response = self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
        )
        return bare_etag(response.get("ETag", ""))

    def copy_if_match(self, source_key: str, etag: str, target_key: str) -> None:
        """Copies ``source_key`` in the version ``etag`` only (S3 answers 412 if it changed:
        raised, so the record is retried), streamed through in parts (memory stays flat).
        A GET, not CopyObject: its If-Match is the condition S3 and the local stack both
        honour (moto ignores CopySourceIfMatch), and one GET is one consistent version."""
        body = self.client.get_object(Bucket=self.bucket, Key=source_key, IfMatch=f'"{etag}"')
        content_type = body.get("ContentType", "application/octet-stream")
        self.client.upload_fileobj(
            body["Body"], self.bucket, target_key, ExtraArgs={"ContentType": content_type}
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
