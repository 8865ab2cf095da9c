"""PNG data URIs, so reports are single self-contained files."""

from __future__ import annotations

import base64
import io

from PIL import Image


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image_data_uri(img: Image.Image) -> str:
    """A PIL image as an inline PNG."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return png_data_uri(buf.getvalue())
