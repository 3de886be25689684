"""``upload:*`` helpers (``client.uploads``): the actions of docs/protocol.md, "Uploads",
and ``upload()``, which does the whole flow -- start, HTTP PUT(s) straight to the
presigned S3 URL(s) with progress callbacks, part confirmations, complete -- and waits
for the server's verdict (``upload:complete`` or ``upload:error``)."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from switchboard_client import wire
from switchboard_client.errors import RequestTimeout, SwitchboardClientError, UploadFailed

if TYPE_CHECKING:
    from switchboard_client.client import Client

Purpose = Literal["attachment", "listing", "avatar", "voice", "recording"]
Progress = Callable[[int, int], None]  # (bytes sent, total bytes)
CHUNK = 64 * 1024
HTTP_TIMEOUT = 60.0


class Uploads:
    def __init__(self, client: Client) -> None:
        self._client = client

    async def start(
        self,
        file_name: str,
        content_type: str,
        size: int,
        *,
        purpose: Purpose = "attachment",
        conversation_id: str | None = None,
        call_id: str | None = None,
    ) -> wire.UploadStarted:
        """``purpose="voice"`` needs ``conversation_id`` (a voice message for it);
        ``"recording"`` needs ``call_id`` (a recording you announced with
        ``client.calls.recording``)."""
        data: dict[str, Any] = {
            "fileName": file_name,
            "contentType": content_type,
            "size": size,
            "purpose": purpose,
        }
        if conversation_id is not None:
            data["conversationId"] = conversation_id
        if call_id is not None:
            data["callId"] = call_id
        return await self._client.call(wire.UploadStarted, "upload:start", data)

    async def part_done(self, upload_id: str, part_number: int, etag: str) -> wire.PartConfirmed:
        return await self._client.call(
            wire.PartConfirmed,
            "upload:part-done",
            {"uploadId": upload_id, "partNumber": part_number, "etag": etag},
        )

    async def complete(
        self, upload_id: str, parts: list[Mapping[str, Any]] | None = None
    ) -> wire.UploadStateReply:
        data: dict[str, Any] = {"uploadId": upload_id}
        if parts is not None:
            data["parts"] = [dict(p) for p in parts]
        return await self._client.call(wire.UploadStateReply, "upload:complete", data)

    async def abort(self, upload_id: str) -> wire.UploadStateReply:
        return await self._client.call(
            wire.UploadStateReply, "upload:abort", {"uploadId": upload_id}
        )

    async def get(self, upload_id: str, *, conversation_id: str | None = None) -> wire.UploadView:
        data = {"uploadId": upload_id}
        if conversation_id is not None:
            data["conversationId"] = conversation_id
        return await self._client.call(wire.UploadView, "upload:get", data)

    async def upload(
        self,
        data: bytes,
        file_name: str,
        content_type: str,
        *,
        purpose: Purpose = "attachment",
        conversation_id: str | None = None,
        call_id: str | None = None,
        on_progress: Progress | None = None,
        timeout: float = 120.0,
    ) -> wire.UploadCompletePush:
        """Uploads ``data`` and returns the ``upload:complete`` push's data (``uploadId``,
        ``url``, ``thumbnailUrl``?, ...). ``on_progress(sent, total)`` runs on the event
        loop as bytes go out. Raises ``UploadFailed`` if the server rejects the stored
        object, ``ServerError``\\ s from the actions; a failed transfer aborts the upload."""
        loop = asyncio.get_running_loop()
        total = len(data)
        sent = 0

        def progressed(count: int) -> None:  # called from the HTTP thread
            def report() -> None:
                nonlocal sent
                sent += count
                if on_progress is not None:
                    on_progress(min(sent, total), total)

            loop.call_soon_threadsafe(report)

        started = await self.start(
            file_name,
            content_type,
            total,
            purpose=purpose,
            conversation_id=conversation_id,
            call_id=call_id,
        )
        upload_id = started.uploadId
        # Subscribed before completing: the verdict may come right after the reply.
        verdicts = self._client.events("upload:complete", "upload:error")
        try:
            if started.method == "put":
                assert started.url is not None
                await asyncio.to_thread(
                    _http_put, started.url, data, dict(started.headers or {}), progressed
                )
                await self.complete(upload_id)
            else:
                part_size = started.partSize or 0
                parts: list[Mapping[str, Any]] = []
                for part in started.parts or []:
                    number = part.partNumber
                    chunk = data[(number - 1) * part_size : number * part_size]
                    etag = await asyncio.to_thread(
                        _http_put,
                        part.url,
                        chunk,
                        {"Content-Type": "application/octet-stream"},
                        progressed,
                    )
                    await self.part_done(upload_id, number, etag)
                    parts.append({"partNumber": number, "etag": etag})
                await self.complete(upload_id, parts)
            deadline = loop.time() + timeout
            while True:
                try:
                    event = await verdicts.get(timeout=max(deadline - loop.time(), 0))
                except TimeoutError:
                    raise RequestTimeout(
                        f"upload {upload_id}: no verdict in {timeout:g}s"
                    ) from None
                if event.data.get("uploadId") != upload_id:
                    continue
                if event.type == "upload:error":
                    raise UploadFailed(
                        upload_id,
                        str(event.data.get("code", "")),
                        str(event.data.get("message", "")),
                    )
                return wire.UploadCompletePush.model_validate(event.data)
        except (OSError, urllib.error.URLError):
            with contextlib.suppress(SwitchboardClientError):
                await self.abort(upload_id)
            raise
        finally:
            verdicts.close()


def _http_put(
    url: str, data: bytes, headers: dict[str, str], progressed: Callable[[int], None]
) -> str:
    """PUTs ``data`` to a presigned URL, streaming it in chunks (for progress); returns
    the response's ETag."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an HTTP URL: {url[:40]}")

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), CHUNK):
            chunk = data[start : start + CHUNK]
            yield chunk
            progressed(len(chunk))

    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body(), method="PUT", headers={**headers, "Content-Length": str(len(data))}
    )
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
        return str(response.headers.get("ETag", ""))
