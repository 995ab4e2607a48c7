"""Dev tool: regenerate the Teams app icons (``color.png`` and ``outline.png``).

Pure standard library (no Pillow): the key symbol is described as a union of
simple shapes, rasterised with supersampling for anti-aliasing, and written as
PNG with ``zlib``.  The generated files are committed; run this only when the
icon design changes::

    .venv/bin/python -m manifest.make_icons
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Keep in sync with "accentColor" in manifest.template.json.
ACCENT = (0x1F, 0x5F, 0xAD)
KEY_GOLD = (0xF7, 0xC5, 0x3C)
WHITE = (0xFF, 0xFF, 0xFF)

# Key drawn in a 100x100 design space, horizontal (bow on the left), then
# rotated by 45 degrees about the centre so the shaft points up-right.
_ANGLE = math.radians(-45)


def _key_coverage(x: float, y: float, bold: bool) -> bool:
    """True if design-space point (x, y) in [0, 100]^2 lies inside the key."""
    # Rotate the sample point back into the horizontal key's frame.
    cx, cy = 50.0, 50.0
    dx, dy = x - cx, y - cy
    cos_a, sin_a = math.cos(-_ANGLE), math.sin(-_ANGLE)
    u = cx + dx * cos_a - dy * sin_a
    v = cy + dx * sin_a + dy * cos_a

    bow_x, bow_y = 27.0, 50.0
    outer, inner = (19.0, 7.5) if bold else (18.0, 8.0)
    half_shaft = 6.0 if bold else 5.0
    d = math.hypot(u - bow_x, v - bow_y)
    if inner <= d <= outer:
        return True
    shaft_left, shaft_right = bow_x + outer - 2.0, 88.0
    if shaft_left <= u <= shaft_right and abs(v - bow_y) <= half_shaft:
        return True
    teeth_top = bow_y + half_shaft - 0.5
    teeth = ((66.0, 74.0, 17.0), (81.0, 88.0, 17.0)) if bold else ((72.0, 79.0, 15.0), (82.5, 88.0, 10.0))
    return any(left <= u <= right and teeth_top <= v <= bow_y + depth for left, right, depth in teeth)


def _render(size: int, supersample: int, bold: bool, margin: float) -> list[list[float]]:
    """Coverage (0..1) per pixel; the 100x100 design is scaled into size minus margins."""
    scale = (size - 2 * margin) / 100.0
    n = supersample
    rows = []
    for py in range(size):
        row = []
        for px in range(size):
            hits = 0
            for sy in range(n):
                for sx in range(n):
                    x = (px + (sx + 0.5) / n - margin) / scale
                    y = (py + (sy + 0.5) / n - margin) / scale
                    hits += _key_coverage(x, y, bold)
            row.append(hits / (n * n))
        rows.append(row)
    return rows


def _png(width: int, height: int, color_type: int, raw_rows: list[bytes]) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + r for r in raw_rows), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def color_icon() -> bytes:
    """192x192 opaque RGB: gold key on the accent colour (symbol inside the central area)."""
    size = 192
    cov = _render(size, supersample=4, bold=False, margin=40)
    rows = []
    for row in cov:
        line = bytearray()
        for c in row:
            line += bytes(round(b * (1 - c) + f * c) for b, f in zip(ACCENT, KEY_GOLD, strict=True))
        rows.append(bytes(line))
    return _png(size, size, 2, rows)


def outline_icon() -> bytes:
    """32x32 RGBA: white key on a transparent background (Teams outline icon rules)."""
    size = 32
    cov = _render(size, supersample=8, bold=True, margin=1)
    rows = [b"".join(bytes((*WHITE, round(255 * c))) for c in row) for row in cov]
    return _png(size, size, 6, rows)


def main() -> None:
    (HERE / "color.png").write_bytes(color_icon())
    (HERE / "outline.png").write_bytes(outline_icon())
    print(f"wrote {HERE / 'color.png'} and {HERE / 'outline.png'}")


if __name__ == "__main__":
    main()
