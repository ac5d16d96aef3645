"""Audio and video: duration, displayed dimensions, corruption, waveform, preview frame,
and the AAC transcode (PyAV: FFmpeg inside its wheel).

Runs in a worker process (workers.py), killed past its time. The whole file is demuxed
to its end: the duration the header claims must match where the packets really stop (a
truncated or corrupt file is refused rather than stored with a wrong duration), and
video is decoded up to the frame used for the preview. Every loop checks a deadline, so
a hostile file can cost time but never hang a worker.
"""
from __future__ import annotations

import array
import dataclasses
import logging
import math
import time

import av
import av.error
from PIL import Image

from server.errors import InvalidMedia, MediaError, MediaTooComplex
from server.processing.images import PREVIEW_EDGE, Rendition, encode_preview

log = logging.getLogger(__name__)

WAVEFORM_BARS = 64
WAVEFORM_RATE = 2000             # samples per second are plenty to draw 64 bars
PREVIEW_AT = 1.0                 # seconds in: past the black first frame of most clips
# Demuxed packets may stop this much short of the header's duration (encoder padding,
# the last frame's length) before the file counts as truncated.
TRUNCATION_SLACK = (0.5, 0.03)   # seconds, share of the duration
# Audio that every browser and iPhone plays as it is; the rest gets an m4a variant.
PLAYABLE_AUDIO = {"aac", "mp3"}


@dataclasses.dataclass(frozen=True)
class AVFacts:
    duration: float | None
    dimensions: dict | None      # as displayed (rotation applied); None without video
    audio_codec: str | None
    waveform: list[int] | None
    preview: Rendition | None


def probe_media(path: str, media_type: str, deadline: float,
                max_pixels: int = 100_000_000) -> AVFacts:
    """The facts of one audio or video file; raises InvalidMedia / MediaTooComplex
    (also for a video whose frames would be larger than ``max_pixels``)."""
    try:
        return _probe(path, media_type, deadline, max_pixels)
    except MediaError:
        raise
    except MemoryError:    # the worker's memory limit (workers.py); FFmpeg's ENOMEM too
        raise MediaTooComplex(f"the {media_type} needs more memory than allowed") from None
    except Exception as e:   # av.error.*, and whatever else hostile input provokes
        log.debug("media rejected: %r", e)
        raise InvalidMedia(f"the {media_type} could not be read to its end") from None


def _check_time(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise MediaTooComplex("the file takes too long to process")


def _is_cover_art(stream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _probe(path: str, media_type: str, deadline: float, max_pixels: int) -> AVFacts:
    with av.open(path, metadata_errors="ignore") as c:
        # A track in a codec FFmpeg does not know (an iPhone's spatial audio beside its
        # AAC) has no codec context: it is neither probed nor stored (remux.py).
        videos = [s for s in c.streams.video
                  if s.codec_context is not None and not _is_cover_art(s)]
        audios = [s for s in c.streams.audio if s.codec_context is not None]
        if not videos and not audios:
            raise InvalidMedia("no audio or video in the file")
        video = videos[0] if videos else None
        audio = audios[0] if audios else None
        if video is not None:
            w, h = video.codec_context.width or 0, video.codec_context.height or 0
            if w * h > max_pixels:   # before a frame of that size is ever allocated
                raise MediaTooComplex(f"{w}x{h} video frames are larger than allowed")
        header = c.duration / av.time_base if c.duration and c.duration > 0 else None
        wave = _Waveform() if media_type == "audio" and audio is not None else None
        frame_img, rotation, frames_seen, last_frame = None, 0, 0, None
        end = 0.0
        streams = [s for s in (video, audio) if s is not None]
        for packet in c.demux(*streams):
            _check_time(deadline)
            if packet.size == 0 or packet.pts is None:
                continue
            t = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            t -= float(packet.stream.start_time * packet.time_base) \
                if packet.stream.start_time is not None else 0.0
            end = max(end, t)
            if packet.stream is video and frame_img is None:
                for frame in packet.decode():
                    frames_seen += 1
                    rotation = frame.rotation or 0
                    if frame.time is None or frame.time >= PREVIEW_AT or (
                            header is not None and frame.time >= header / 2):
                        frame_img = _frame_image(frame)
                        break
                    last_frame = frame
            elif packet.stream is audio and wave is not None:
                for frame in packet.decode():
                    wave.add(frame)
        if video is not None and frame_img is None:
            if frames_seen == 0:
                raise InvalidMedia("no video frame could be decoded")
            frame_img = _frame_image(last_frame)   # a clip shorter than PREVIEW_AT
        if end <= 0:
            raise InvalidMedia("no audio or video data in the file")
        if header is not None and end < header - max(TRUNCATION_SLACK[0],
                                                       TRUNCATION_SLACK[1] * header):
            raise InvalidMedia(f"truncated: the header says {header:.1f} s, "
                               f"the data stops at {end:.1f} s")
        duration = end if header is None else min(header, end)
        dims = None
        preview = None
        if video is not None:
            w, h = video.codec_context.width, video.codec_context.height
            if rotation % 180:
                w, h = h, w
            dims = {"width": w, "height": h}
            img = frame_img.rotate(rotation, expand=True) if rotation else frame_img
            img.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE))
            preview = encode_preview(img)
        return AVFacts(duration=duration, dimensions=dims,
                       audio_codec=_codec_name(audio) if audio is not None else None,
                       waveform=wave.bars() if wave is not None else None,
                       preview=preview)


def _codec_name(stream) -> str:
    # The codec, not the decoder chosen for it ("mp3", not "mp3float").
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def _frame_image(frame) -> Image.Image:
    return frame.to_image()


class _Waveform:
    """Peak loudness per bar, from mono 16-bit samples at a low rate."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=WAVEFORM_RATE)
        self._samples = array.array("h")

    def add(self, frame) -> None:
        frame.pts = None
        for out in self._resampler.resample(frame):
            self._samples.frombytes(bytes(out.planes[0])[:out.samples * 2])

    def bars(self) -> list[int]:
        s = self._samples
        if not s:
            return [0] * WAVEFORM_BARS
        step = len(s) / WAVEFORM_BARS
        peaks = []
        for i in range(WAVEFORM_BARS):
            part = s[int(i * step):max(int((i + 1) * step), int(i * step) + 1)]
            peaks.append(max(max(part), -min(part)) if part else 0)
        top = max(peaks)
        return [round(100 * p / top) if top else 0 for p in peaks]


def transcode_m4a(src: str, dst: str, deadline: float) -> float:
    """Encode the first audio stream of ``src`` as AAC in an M4A file at ``dst``;
    returns its duration in seconds."""
    try:
        return _transcode(src, dst, deadline)
    except MediaError:
        raise
    except MemoryError:
        raise MediaTooComplex("the audio needs more memory than allowed") from None
    except Exception as e:
        log.debug("transcode failed: %r", e)
        raise InvalidMedia("the audio could not be decoded") from None


def _transcode(src: str, dst: str, deadline: float) -> float:
    with av.open(src, metadata_errors="ignore") as inp, \
            av.open(dst, "w", format="ipod") as out:
        a = inp.streams.audio[0]
        channels = min(2, a.codec_context.channels or 1)
        layout = "stereo" if channels == 2 else "mono"
        rate = 48000 if (a.codec_context.sample_rate or 48000) > 44100 else 44100
        enc = out.add_stream("aac", rate=rate, layout=layout)
        enc.bit_rate = 64_000 * channels
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        samples = 0
        for packet in inp.demux(a):
            _check_time(deadline)
            for frame in packet.decode():
                frame.pts = None
                for r in resampler.resample(frame):
                    samples += r.samples
                    out.mux(enc.encode(r))
        for r in resampler.resample(None):
            samples += r.samples
            out.mux(enc.encode(r))
        out.mux(enc.encode(None))
    return samples / rate


def whole_seconds(duration: float) -> int:
    """The original column's value: whole seconds, rounded, and at least 1 for any
    sound at all (a 0.4 s voice note is not 0 s long to its listener)."""
    return max(1, math.floor(duration + 0.5)) if duration > 0 else 0
