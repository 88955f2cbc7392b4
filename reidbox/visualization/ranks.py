"""Rank-list images: each query followed by its top-k gallery images, readable at a glance:
crops scaled up to at least 256 px high, a caption over every tile (query / rank, distance,
identity and camera), and true / false matches marked by a thick green / red frame and a
"match" / "wrong" tag in the same colour (OpenCV)."""

from __future__ import annotations

import errno
import os
import random
from typing import List, Optional, Sequence, Tuple

import numpy as np
from ..errors import InputError, MissingInputError

GREEN, RED, GREY = (0, 160, 0), (0, 0, 210), (90, 90, 90)  # BGR
#: Minimum tile height on screen; smaller test-size crops are scaled up to it.
MIN_TILE_HEIGHT = 256
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def display_size(size: Tuple[int, int]) -> Tuple[int, int]:
    """(h, w) of a tile: ``size`` scaled up (aspect kept) to at least ``MIN_TILE_HEIGHT``."""
    h, w = int(size[0]), int(size[1])
    f = max(1.0, MIN_TILE_HEIGHT / max(h, 1))
    return int(round(h * f)), int(round(w * f))


def _tile(
    path: str, size: Tuple[int, int], colour, lines: Sequence[str], border: int = 8
) -> np.ndarray:
    import cv2

    h, w = size
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise MissingInputError(f"cannot read image {path}")
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    img = cv2.copyMakeBorder(img, border, border, border, border, cv2.BORDER_CONSTANT, value=colour)
    scale = max(0.45, img.shape[1] / 260)
    line_h = int(30 * scale) + 4
    cap = np.full((line_h * len(lines) + 6, img.shape[1], 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(
            cap,
            text,
            (4, line_h * (i + 1) - 4),
            _FONT,
            scale,
            colour if i == 0 else (0, 0, 0),
            2 if i == 0 else 1,
            cv2.LINE_AA,
        )
    return np.concatenate([cap, img], axis=0)


def draw_rank_list(
    query_path: str,
    gallery_paths: Sequence[str],
    matches: Sequence[Optional[bool]],
    distances: Sequence[float],
    out_path: str,
    size: Tuple[int, int] = (256, 128),
    query_label: str = "",
    gallery_labels: Optional[Sequence[str]] = None,
    header: str = "",
) -> str:
    """One row written as PNG: the query (grey frame, caption "query" and ``query_label``), a
    gap, then the ranked gallery images at ``size`` (h, w) each, captioned with the rank and
    "match" (green frame) or "wrong" (red frame), the distance, and ``gallery_labels``; a
    ``matches`` entry None (no labels: a folder of crops) gives a grey frame and no verdict."""
    import cv2

    tiles = [_tile(query_path, size, GREY, ["query", query_label, ""])]
    for r, (p, ok, d) in enumerate(zip(gallery_paths, matches, distances), start=1):
        extra = gallery_labels[r - 1] if gallery_labels is not None else ""
        verdict = "" if ok is None else (" match" if ok else " wrong")  # None: unlabelled
        colour = GREY if ok is None else (GREEN if ok else RED)
        tiles.append(_tile(p, size, colour, [f"#{r}{verdict}", f"d {d:.3f}", extra]))
    height = max(t.shape[0] for t in tiles)
    row = []
    for i, t in enumerate(tiles):
        pad = np.full((height - t.shape[0], t.shape[1], 3), 255, np.uint8)
        row.append(np.concatenate([t, pad], axis=0))
        row.append(np.full((height, 24 if i == 0 else 6, 3), 255, np.uint8))
    image = np.concatenate(row[:-1], axis=1)
    if header:  # what is shown: the query, its AP, the model and evaluation settings
        image = np.concatenate([_header(header, image.shape[1]), image], axis=0)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    if not cv2.imwrite(out_path, image):
        raise OSError(errno.EIO, "the image writer failed (unknown extension?)", out_path)
    return out_path


ORDERS = ("random", "worst", "best")


def _header(text: str, width: int) -> np.ndarray:
    """A white strip with ``text`` (lines split at " | " when too wide) across ``width``."""
    import cv2

    scale, thick = 0.55, 1
    words, lines = text.split(" | "), [""]
    for w in words:
        trial = f"{lines[-1]} | {w}" if lines[-1] else w
        if cv2.getTextSize(trial, _FONT, scale, thick)[0][0] > width - 16 and lines[-1]:
            lines.append(w)
        else:
            lines[-1] = trial
    line_h = 24
    strip = np.full((line_h * len(lines) + 10, width, 3), 255, np.uint8)
    for i, ln in enumerate(lines):
        cv2.putText(strip, ln, (8, line_h * (i + 1)), _FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return strip


def choose_queries(
    num_query: int,
    num_queries: int = 10,
    query_indices: Optional[Sequence[int]] = None,
    seed: int = 0,
    order: str = "random",
    ap: Optional[Sequence[float]] = None,
) -> List[int]:
    """The queries to draw: ``query_indices`` (checked), or ``num_queries`` of them (never
    more than exist) by ``order``: "random" (seeded, sorted by index), "worst" (lowest AP
    first, as fast-reid's visualiser does: where the model fails) or "best" (highest first);
    ``ap`` is the per-query AP, NaN (no valid match) last."""
    if order not in ORDERS:
        raise ValueError(f"query order {order!r}: choose one of {', '.join(ORDERS)}")
    if query_indices is None and order != "random":
        if ap is None or len(ap) != num_query:
            raise ValueError(f"query order {order!r} needs the per-query AP of every query")
        sign = 1.0 if order == "worst" else -1.0
        scored = [
            (not np.isfinite(a), sign * float(a) if np.isfinite(a) else 0.0, i)
            for i, a in enumerate(ap)
        ]
        return [i for _, _, i in sorted(scored)[:num_queries]]
    if query_indices is None:
        rng = random.Random(seed)
        return sorted(rng.sample(range(num_query), min(num_queries, num_query)))
    bad = [i for i in query_indices if not 0 <= i < num_query]
    if bad:
        raise InputError(f"query indices {bad} out of range: there are {num_query} queries")
    return list(query_indices)


def draw_rank_lists(
    query: Sequence,
    gallery: Sequence,
    query_indices: Sequence[int],
    indices: np.ndarray,
    distances: np.ndarray,
    out_dir: str,
    size: Tuple[int, int] = (256, 128),
    ap: Optional[Sequence[float]] = None,
    header: str = "",
) -> List[str]:
    """One PNG per chosen query: ``query``/``gallery`` items (``.path``, ``.pid``,
    ``.camid``); row r of ``indices``/``distances`` ((len(query_indices), k), as
    :func:`reidbox.retrieval.rank_lists` gives them, -1 ends a short row) is the ranked list
    of ``query[query_indices[r]]``. ``size`` is scaled up to at least 256 px high. Files are
    ``query<index>_id<pid>_c<camera>.png``; names and captions number cameras from 1, as the
    releases' file names do (``camid`` is 0-based). Each image's header names the query (its
    index, as ``--queries`` takes it), its AP (``ap``: per query of ``query``, NaN where no
    valid match) and ``header`` (the model and evaluation settings). Returns the written
    paths."""
    tile = display_size(size)
    paths = []
    for row, qi in enumerate(query_indices):
        q = query[qi]
        keep = indices[row] >= 0
        ranked = [gallery[j] for j in indices[row][keep].tolist()]
        name = f"query{qi:05d}_id{q.pid}_c{q.camid + 1}.png"
        parts = [f"query {qi} (id {q.pid}, camera {q.camid + 1})"]
        if ap is not None:
            a = float(ap[qi])
            parts.append(f"AP {100 * a:.1f}%" if np.isfinite(a) else "AP - (no valid match)")
        paths.append(
            draw_rank_list(
                q.path,
                [g.path for g in ranked],
                [g.pid == q.pid for g in ranked],
                distances[row][keep].tolist(),
                os.path.join(out_dir, name),
                tile,
                query_label=f"id {q.pid} c{q.camid + 1}",
                gallery_labels=[f"id {g.pid} c{g.camid + 1}" for g in ranked],
                header=" | ".join(parts + ([header] if header else [])),
            )
        )
    return paths
