"""BlurHash (https://github.com/woltapp/blurhash, its algorithm.md): a few cosine
components of an image, in about 30 characters, that a client draws as a blurred
placeholder while the real bytes arrive (Mastodon's and Matrix clients' placeholders).

A pure function over a small RGB image: the caller shrinks the picture first (32x32
is plenty; the components are the lowest frequencies anyway), so encoding costs
nothing beside the decode that made the pixels.
"""
from __future__ import annotations

import math

BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def base83(value: int, length: int) -> str:
    """``value`` as ``length`` base-83 digits, most significant first."""
    return "".join(BASE83[value // 83 ** (length - i - 1) % 83] for i in range(length))


def srgb_to_linear(v: int) -> float:
    x = v / 255
    return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4


def linear_to_srgb(v: float) -> int:
    x = max(0.0, min(1.0, v))
    if x <= 0.0031308:
        return int(x * 12.92 * 255 + 0.5)
    return int((1.055 * x ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _sign_pow(v: float, exp: float) -> float:
    return math.copysign(abs(v) ** exp, v)


def encode(width: int, height: int, rgb: bytes, x_components: int = 4,
           y_components: int = 3) -> str:
    """The BlurHash of a ``width`` x ``height`` image whose pixels are ``rgb`` (3 bytes
    each, row by row, sRGB)."""
    if not (1 <= x_components <= 9 and 1 <= y_components <= 9):
        raise ValueError("components must be 1 to 9")
    if width < 1 or height < 1 or len(rgb) != width * height * 3:
        raise ValueError("rgb must hold width x height pixels of 3 bytes")
    linear = [srgb_to_linear(v) for v in range(256)]
    cos_x = [[math.cos(math.pi * i * x / width) for x in range(width)]
             for i in range(x_components)]
    cos_y = [[math.cos(math.pi * j * y / height) for y in range(height)]
             for j in range(y_components)]
    factors = []
    for j in range(y_components):
        for i in range(x_components):
            r = g = b = 0.0
            cx = cos_x[i]
            for y in range(height):
                cy = cos_y[j][y]
                row = y * width * 3
                for x in range(width):
                    basis = cx[x] * cy
                    p = row + 3 * x
                    r += basis * linear[rgb[p]]
                    g += basis * linear[rgb[p + 1]]
                    b += basis * linear[rgb[p + 2]]
            scale = (1 if i == 0 and j == 0 else 2) / (width * height)
            factors.append((r * scale, g * scale, b * scale))
    dc, ac = factors[0], factors[1:]
    out = base83((x_components - 1) + (y_components - 1) * 9, 1)
    if ac:
        actual = max(abs(c) for f in ac for c in f)
        quantised = max(0, min(82, int(actual * 166 - 0.5)))
        max_value = (quantised + 1) / 166
        out += base83(quantised, 1)
    else:
        max_value = 1.0
        out += base83(0, 1)
    out += base83((linear_to_srgb(dc[0]) << 16) + (linear_to_srgb(dc[1]) << 8)
                  + linear_to_srgb(dc[2]), 4)
    for f in ac:
        q = [max(0, min(18, int(_sign_pow(c / max_value, 0.5) * 9 + 9.5))) for c in f]
        out += base83(q[0] * 19 * 19 + q[1] * 19 + q[2], 2)
    return out
