"""How media metadata looks on the wire."""
from __future__ import annotations

from server.http.thumbnails import ThumbnailRequest
from server.processing.thumbnails import animates, has_thumbnails
from server.security.signing import UrlSigner
from server.store.media import MediaRecord


def media_path(media_id: int) -> str:
    return f"/api/media/{media_id}"


def media_json(rec: MediaRecord, urls: UrlSigner, *, admin: bool = False) -> dict:
    """The JSON of a media record; ``urls`` is ``request.app[security.SIGNER]``, which
    makes ``url`` a signed URL (or the plain path under MEDIA_PUBLIC_READ). ``admin``:
    the caller is an admin, who also sees that its content is quarantined and why (the
    keys are there only then: media otherwise looks the same to everyone)."""
    body = {
        "id": rec.id,
        "message_id": rec.message_id,
        "file_name": rec.file_name,
        "original_name": rec.original_name,
        "mime_type": rec.mime_type,
        "file_size": rec.file_size,
        "media_type": rec.media_type,
        "is_compressed": rec.is_compressed,
        "compression_quality": rec.compression_quality,
        "duration": rec.duration,
        "duration_exact": rec.duration_exact,
        "dimensions": rec.dimensions,
        "zapi_sent": rec.zapi_sent,
        "zapi_message_id": rec.zapi_message_id,
        "sha256": rec.sha256.hex(),
        "created_at": rec.created_at.isoformat(),
        "updated_at": rec.updated_at.isoformat(),
        "url": urls.media_url(rec.id),
        **({"waveform": rec.waveform} if rec.waveform is not None else {}),
        "variants": {name: {"url": urls.media_url(rec.id, name), **v}
                     for name, v in sorted((rec.variants or {}).items())
                     if not name.startswith("thumb_")},   # listed as thumbnails
        "thumbnails": thumbnails_json(rec, urls),
        "placeholder": rec.placeholder,
    }
    if admin and rec.quarantine_reason is not None:
        body["quarantined"] = True
        body["quarantine_reason"] = rec.quarantine_reason
    return body


def thumbnails_json(rec: MediaRecord, urls: UrlSigner) -> list[dict]:
    """One entry per configured size, made yet or not (the first request makes it);
    an image that can move is asked for animated, so a GIF's thumbnail moves too."""
    if not has_thumbnails(rec.media_type):
        return []
    moving = animates(rec.mime_type, True)
    return [{"width": w, "height": h, "method": m,
             "url": urls.thumbnail_url(rec.id, ThumbnailRequest(w, h, m, moving))}
            for w, h, m in urls.thumbnail_sizes]

