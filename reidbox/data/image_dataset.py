"""A torch ``Dataset`` over a list of :class:`Sample` items."""

from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Sequence

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import UserError
from .datasets.base import Sample


class ImageReadError(UserError, OSError):
    """An image file is missing, truncated or not an image; the message names the file."""


def read_image(path: str) -> Image.Image:
    """Open an image as RGB, with an error that names the file."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
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
