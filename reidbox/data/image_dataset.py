"""A torch ``Dataset`` over a list of :class:`Sample` items."""

from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import UserError
from .datasets.base import Sample


class ImageReadError(UserError, OSError):
    """An image file is missing, truncated or not an image; the message names the file."""


_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb8(img: Image.Image, name: str = "image") -> Image.Image:
    """``img`` as the 8-bit RGB picture it shows, whatever its mode.

    Pillow's own ``convert("RGB")`` clips 16-bit and 32-bit grey values at 255 (a 16-bit image
    turns near-white), so those are scaled: 16-bit (``I;16*``, and ``I`` as Pillow opens 16-bit
    PNGs) by 255/65535, float (``F``) from [0, 1] or [0, 255]. Palette, grey, grey+alpha, RGBA,
    CMYK and YCbCr go through Pillow's conversion (alpha dropped). A value range that has no
    8-bit reading is refused in one line naming ``name``.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _HIGH_DEPTH or mode == "F":
        a = np.asarray(img, dtype=np.float64)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0:
            raise ImageReadError(
                f"{name}: {mode} image with values in [{lo:g}, {hi:g}] has no 8-bit reading; "
                "save it as 8-bit (or 16-bit) RGB or grey"
            )
        if mode == "F":
            scale = 255.0 if hi <= 1.0 else 1.0
            if hi * scale > 255.0:
                raise ImageReadError(
                    f"{name}: float image with values up to {hi:g} (expected [0, 1] or "
                    "[0, 255]); save it as 8-bit or 16-bit"
                )
        elif mode == "I" and hi > 65535:
            raise ImageReadError(
                f"{name}: 32-bit integer image with values up to {hi:g} has no 8-bit reading; "
                "save it as 8-bit or 16-bit"
            )
        else:
            scale = 255.0 / 65535.0  # 16-bit data: 65535 is white
        grey = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in ("LA", "PA", "RGBA", "RGBa", "La"):
        img = img.convert(mode.rstrip("Aa") if mode != "PA" else "RGBA")
    return img.convert("RGB")


def read_image(path: str) -> Image.Image:
    """Open an image as the 8-bit RGB picture it shows (:func:`to_rgb8`), with an error that
    names the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb8(img, path)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from None


def filter_readable(items: Sequence[Sample], what: str = "images") -> List[Sample]:
    """Keep the items whose image decodes; log each dropped file and the count."""
    log = logging.getLogger("reidbox")
    kept = []
    for s in items:
        try:
            read_image(s.path)
        except ImageReadError as e:
            log.warning("skipping unreadable image: %s", e)
            continue
        kept.append(s)
    if len(kept) < len(items):
        log.warning("skipped %d unreadable %s of %d", len(items) - len(kept), what, len(items))
    return kept


class ImageDataset(Dataset):
    """Yields ``{"images": (3, H, W), "targets": pid, "camids": camid, "dsetids", "index"}``."""

    def __init__(self, items: Sequence[Sample], transform: Optional[Callable] = None) -> None:
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Dict:
        s = self.items[index]
        img = read_image(s.path)
        if self.transform is not None:
            img = self.transform(img)
        return {
            "images": img,
            "targets": s.pid,
            "camids": s.camid,
            "dsetids": s.dsetid,
            "index": index,
        }
