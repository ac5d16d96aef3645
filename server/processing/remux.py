"""Removing container metadata from video and audio without re-encoding them.

Phones write where a clip was shot into its container: QuickTime's ``©xyz`` in udta,
``com.apple.quicktime.location.ISO6709`` in a Keys/mdta list, XMP in a uuid box,
timed metadata tracks; ID3 and Vorbis comments carry titles and comments. None of it
is needed to play the file. ``strip_container`` copies the audio and video packets,
byte for byte and with their timestamps, into a new file of the same format written by
FFmpeg's muxer with no metadata at all, so everything else is left behind: container
and stream tags, chapters, cover art, data and subtitle tracks, tracks in codecs
FFmpeg does not know, foreign boxes. The
codec parameters travel with each stream, and with them the display matrix: a portrait
phone video stays portrait. MP4 and QuickTime come out with their index first
(faststart), so players start before the whole file has arrived.

Runs in a worker thread, like the rest of processing; a pure function from one path to
another, whose loop checks the deadline.
"""
from __future__ import annotations

import logging
import time

import av

from server.errors import InvalidMedia, MediaError, MediaTooComplex

log = logging.getLogger(__name__)

_MOV = {"movflags": "+faststart"}
_MOV_FAMILY = {"mp4", "mov", "3gp", "ipod"}
# mime type -> (FFmpeg muxer, its options). Types not named (MPEG-PS, AVI, AMR) carry
# no location tags that FFmpeg reads, or none at all, and are kept as sent.
MUXERS: dict[str, tuple[str, dict[str, str]]] = {
    "video/mp4": ("mp4", _MOV),
    "video/x-m4v": ("mp4", _MOV),
    "video/quicktime": ("mov", _MOV),
    "video/3gpp": ("3gp", _MOV),
    "video/webm": ("webm", {}),
    "video/x-matroska": ("matroska", {}),
    "audio/mp4": ("ipod", _MOV),
    "audio/ogg": ("ogg", {}),
    "audio/mpeg": ("mp3", {}),
    "audio/aac": ("adts", {}),
    "audio/wav": ("wav", {}),
    "audio/x-wav": ("wav", {}),
    "audio/flac": ("flac", {}),
    "audio/x-flac": ("flac", {}),
}
# bitexact: no "encoder: Lavf..." tag or muxer name written in their place.
_COMMON = {"fflags": "+bitexact"}


def strippable(mime: str) -> bool:
    """Whether ``strip_container`` rewrites files of this type."""
    return mime in MUXERS


def strip_container(src: str, dst: str, mime: str, deadline: float) -> None:
    """Write ``src``'s audio and video packets, unchanged, to ``dst`` in the same format
    without any metadata; raises InvalidMedia if the file cannot be remuxed, and
    MediaTooComplex past ``deadline`` (time.monotonic)."""
    try:
        _remux(src, dst, mime, deadline)
    except MediaError:
        raise
    except Exception as e:   # av.error.*: a muxer refusing what the demuxer found
        log.debug("remux failed: %r", e)
        raise InvalidMedia("the file could not be rewritten without its metadata") from None


def _kept(stream) -> bool:
    # A codec FFmpeg does not know has no codec context, and no muxer would take it.
    return stream.type in ("video", "audio") and stream.codec_context is not None and not (
        stream.disposition & av.stream.Disposition.attached_pic)


def _copy_of(out, stream):
    """An output stream for ``stream``'s packets: its codec parameters (the display
    matrix included) and nothing of its metadata."""
    copy = out.add_stream_from_template(stream)
    if stream.type == "video" and stream.average_rate:
        # Matroska writes each frame's duration only as the track's default duration.
        copy.codec_context.framerate = stream.average_rate
    if out.format.name in _MOV_FAMILY and stream.codec_context.codec_tag == "hvc1":
        # The muxer would write HEVC as hev1, which Apple's players refuse to play;
        # iPhones record hvc1.
        copy.codec_context.codec_tag = "hvc1"
    return copy


def _remux(src: str, dst: str, mime: str, deadline: float) -> None:
    fmt, options = MUXERS[mime]
    with av.open(src, metadata_errors="ignore") as inp, \
            av.open(dst, "w", format=fmt, options={**_COMMON, **options}) as out:
        streams = {s.index: _copy_of(out, s) for s in inp.streams if _kept(s)}
        if not streams:
            raise InvalidMedia("no audio or video in the file")
        for packet in inp.demux(*(inp.streams[i] for i in streams)):
            if time.monotonic() > deadline:
                raise MediaTooComplex("the file takes too long to process")
            if packet.size == 0:   # the demuxer's end-of-stream marker
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
