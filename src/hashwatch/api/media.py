"""Media in and out of the HTTP API: reading an upload within its limits, and serving an image
kept for review. Shared by the JSON routers and the console."""

from __future__ import annotations

from fastapi.responses import Response
from starlette.datastructures import UploadFile

from hashwatch.media import MediaLimits, check_byte_count

__all__ = ["image_response", "read_upload"]


async def read_upload(upload: UploadFile, limits: MediaLimits) -> bytes:
    """The upload's bytes, in memory only (see create_app on spooling), within the byte limit."""
    if upload.size is not None:
        check_byte_count(upload.size, limits)
    data = await upload.read(limits.max_bytes + 1)
    await upload.close()
    check_byte_count(len(data), limits)
    return data


def image_response(data: bytes, media_type: str, disposition: str = "inline") -> Response:
    """Kept media as a response that is never cached. Only image types are served as
    themselves, and nosniff stops a browser guessing at anything else."""
    kind = media_type if media_type.startswith("image/") else "application/octet-stream"
    return Response(
        content=data,
        media_type=kind,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": disposition,
        },
    )
