"""Procedural person-ReID data in the exact Market-1501 layout, deterministic from a seed.

Why: a toolbox needs a dataset that exists offline, is small enough to train on a CPU in
minutes, and still behaves like ReID data (identity cues that survive camera changes, harder
cross-camera than same-camera matching, distractors and junk), so the real parsing and
evaluation code paths run on it. See docs/synthetic.md.

Everything random is drawn from ``np.random.default_rng([seed, role, index])`` so an identity or
a camera does not change when unrelated sizes change, and the same arguments give identical
JPEG bytes (OpenCV's encoder is deterministic for identical pixels).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .datasets.base import DatasetError
from ..errors import InputError
from ..utils.misc import exclusive

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("bounding_box_train", "bounding_box_test", "query")

# Role tags for the seed sequences (arbitrary distinct integers).
_R_ID, _R_CAM, _R_SPLIT, _R_IMG, _R_DISTRACT = 11, 23, 37, 41, 53

# Named clothing colours (BGR). Palettes below index into this table, so identities of a domain
# share colours sometimes (realistic hard negatives) and domains differ in what people wear.
COLOURS: Dict[str, Tuple[int, int, int]] = {
    "black": (30, 30, 30),
    "white": (235, 235, 235),
    "grey": (128, 128, 128),
    "red": (40, 40, 200),
    "darkred": (30, 20, 120),
    "orange": (30, 130, 240),
    "yellow": (40, 215, 235),
    "green": (60, 160, 50),
    "darkgreen": (40, 90, 30),
    "teal": (150, 150, 30),
    "blue": (200, 90, 30),
    "navy": (100, 40, 20),
    "lightblue": (235, 190, 130),
    "purple": (140, 40, 120),
    "pink": (180, 140, 245),
    "brown": (40, 70, 120),
    "beige": (160, 200, 220),
    "khaki": (110, 160, 170),
}
BRIGHT = [
    "white",
    "red",
    "orange",
    "yellow",
    "green",
    "teal",
    "blue",
    "lightblue",
    "purple",
    "pink",
    "black",
    "beige",
]
MUTED = [
    "black",
    "grey",
    "darkred",
    "darkgreen",
    "navy",
    "brown",
    "khaki",
    "beige",
    "white",
    "blue",
    "purple",
    "teal",
]
ALL = list(COLOURS)
LOWER = [
    "black",
    "navy",
    "blue",
    "grey",
    "khaki",
    "brown",
    "beige",
    "white",
    "darkgreen",
    "darkred",
]
SKIN = [(170, 195, 235), (140, 170, 215), (100, 135, 185), (70, 100, 140), (50, 70, 100)]
HAIR = [(20, 20, 20), (30, 45, 70), (40, 80, 130), (90, 150, 200), (160, 160, 160)]
PATTERNS = ("plain", "stripes", "checks", "logo", "twotone")
BAGS = ("none", "backpack", "shoulder", "handbag")


@dataclass(frozen=True)
class DomainStyle:
    """Ranges the cameras and identities of one domain are drawn from (``lo, hi`` pairs)."""

    name: str
    palette: Tuple[str, ...] = tuple(ALL)
    pattern_p: Tuple[float, ...] = (0.35, 0.2, 0.15, 0.15, 0.15)  # over PATTERNS
    bag_p: Tuple[float, ...] = (0.45, 0.25, 0.15, 0.15)  # over BAGS
    hat_p: float = 0.2
    gain: Tuple[float, float] = (0.85, 1.15)  # per-channel colour cast
    brightness: Tuple[float, float] = (0.75, 1.2)
    gamma: Tuple[float, float] = (0.75, 1.35)
    blur: Tuple[float, float] = (0.0, 0.7)  # Gaussian sigma in pixels at 128 x 64
    noise: Tuple[float, float] = (2.0, 7.0)  # pixel noise std
    occlusion_p: Tuple[float, float] = (0.0, 0.15)  # per-image chance of an occluder
    bg_level: Tuple[float, float] = (60.0, 190.0)  # background brightness
    clutter: Tuple[int, int] = (2, 6)  # background rectangles per image
    scale: Tuple[float, float] = (0.8, 0.97)  # person height / image height
    aspect: Tuple[float, float] = (0.85, 1.15)  # person width stretch
    jpeg: Tuple[int, int] = (80, 95)


STYLES: Dict[str, DomainStyle] = {
    "default": DomainStyle("default"),
    # Indoor mall: bright, even light, little blur, saturated clothes, few occluders.
    "indoor": DomainStyle(
        "indoor",
        palette=tuple(BRIGHT),
        gain=(0.9, 1.1),
        brightness=(1.0, 1.3),
        gamma=(0.75, 1.0),
        blur=(0.0, 0.5),
        noise=(1.0, 4.0),
        occlusion_p=(0.0, 0.1),
        bg_level=(150.0, 220.0),
        bag_p=(0.35, 0.15, 0.2, 0.3),
        hat_p=0.1,
    ),
    # Dusk street: dark, strong blue cast, more blur and noise, muted clothes, hats and bags.
    "dusk": DomainStyle(
        "dusk",
        palette=tuple(MUTED),
        gain=(0.75, 1.05),
        brightness=(0.55, 0.85),
        gamma=(1.1, 1.6),
        blur=(0.5, 1.4),
        noise=(4.0, 10.0),
        occlusion_p=(0.05, 0.25),
        bg_level=(40.0, 110.0),
        pattern_p=(0.5, 0.2, 0.1, 0.1, 0.1),
        bag_p=(0.3, 0.4, 0.2, 0.1),
        hat_p=0.35,
        jpeg=(70, 85),
    ),
    # Crowded station: many occluders and clutter, wide viewpoint changes.
    "occluded": DomainStyle(
        "occluded",
        occlusion_p=(0.3, 0.55),
        clutter=(5, 10),
        scale=(0.75, 0.97),
        aspect=(0.8, 1.2),
        pattern_p=(0.2, 0.25, 0.2, 0.2, 0.15),
    ),
}
# Per-style extra colour cast (BGR multiplier) applied on top of each camera's own cast.
_STYLE_TINT = {
    "default": (1.0, 1.0, 1.0),
    "indoor": (0.95, 1.0, 1.08),
    "dusk": (1.3, 1.0, 0.75),
    "occluded": (1.0, 1.0, 1.0),
}


@dataclass
class Identity:
    """Appearance of one person; everything that makes them recognisable."""

    height: float  # fraction of the person box height actually used (short people)
    width: float  # body width factor
    skin: Tuple[int, int, int]
    hair: Tuple[int, int, int]
    long_hair: bool
    upper: Tuple[int, int, int]
    upper2: Tuple[int, int, int]  # pattern colour
    pattern: str
    short_sleeves: bool
    lower: Tuple[int, int, int]
    skirt: bool
    shorts: bool
    shoes: Tuple[int, int, int]
    bag: str
    bag_colour: Tuple[int, int, int]
    hat: Optional[Tuple[int, int, int]]


@dataclass
class Camera:
    """One camera's rendering: viewpoint, colour cast, light, blur, occluders, background."""

    facing_back: bool
    mirror: bool
    gain: np.ndarray  # (3,) BGR multipliers
    brightness: float
    gamma: float
    blur: float
    noise: float
    occlusion_p: float
    bg: np.ndarray  # (3,) base background colour
    bg_palette: np.ndarray  # (4, 3) clutter colours
    clutter: Tuple[int, int]
    scale: float
    aspect: float
    y_shift: float
    jpeg: int
    pole_x: float  # where this camera's fixed pole occluder stands (fraction of width)


def _colour(
    rng: np.random.Generator, names: Sequence[str], jitter: int = 18
) -> Tuple[int, int, int]:
    base = np.array(COLOURS[names[rng.integers(len(names))]], dtype=np.int64)
    return tuple(int(v) for v in np.clip(base + rng.integers(-jitter, jitter + 1, 3), 0, 255))


def make_identity(rng: np.random.Generator, style: DomainStyle) -> Identity:
    """Draw one identity's appearance from the domain's distributions."""
    upper = _colour(rng, style.palette)
    upper2 = _colour(rng, [c for c in style.palette if COLOURS[c] != upper] or ALL)
    skirt = bool(rng.random() < 0.12)
    return Identity(
        height=float(rng.uniform(0.88, 1.0)),
        width=float(rng.uniform(0.8, 1.25)),
        skin=SKIN[rng.integers(len(SKIN))],
        hair=HAIR[rng.integers(len(HAIR))],
        long_hair=bool(rng.random() < 0.3),
        upper=upper,
        upper2=upper2,
        pattern=PATTERNS[rng.choice(len(PATTERNS), p=np.array(style.pattern_p))],
        short_sleeves=bool(rng.random() < 0.4),
        lower=_colour(rng, LOWER),
        skirt=skirt,
        shorts=bool(not skirt and rng.random() < 0.15),
        shoes=_colour(rng, ["black", "white", "brown", "grey", "red", "blue"], 10),
        bag=BAGS[rng.choice(len(BAGS), p=np.array(style.bag_p))],
        bag_colour=_colour(rng, ALL),
        hat=_colour(rng, ALL) if rng.random() < style.hat_p else None,
    )


def make_camera(rng: np.random.Generator, style: DomainStyle) -> Camera:
    """Draw one camera from the domain's ranges; the style tint is applied on top."""
    u = rng.uniform
    tint = np.array(_STYLE_TINT.get(style.name, (1.0, 1.0, 1.0)))
    bg = rng.uniform(*style.bg_level) * rng.uniform(0.85, 1.15, 3)
    return Camera(
        facing_back=bool(rng.random() < 0.5),
        mirror=bool(rng.random() < 0.5),
        gain=u(*style.gain, 3) * tint,
        brightness=float(u(*style.brightness)),
        gamma=float(u(*style.gamma)),
        blur=float(u(*style.blur)),
        noise=float(u(*style.noise)),
        occlusion_p=float(u(*style.occlusion_p)),
        bg=np.clip(bg, 0, 255),
        bg_palette=np.clip(bg[None] + rng.uniform(-70, 70, (4, 3)), 0, 255),
        clutter=style.clutter,
        scale=float(u(*style.scale)),
        aspect=float(u(*style.aspect)),
        y_shift=float(u(-0.03, 0.03)),
        jpeg=int(rng.integers(style.jpeg[0], style.jpeg[1] + 1)),
        pole_x=float(u(0.1, 0.9)),
    )


def _pt(x: float, y: float) -> Tuple[int, int]:
    return int(round(x)), int(round(y))


def _limb(img: np.ndarray, p0, p1, colour, thick: float) -> None:
    cv2.line(img, _pt(*p0), _pt(*p1), colour, max(1, int(round(thick))), cv2.LINE_AA)


@dataclass
class _Figure:
    """Where the parts of one drawn person go, in pixels (see :func:`draw_person`)."""

    cx: float
    top: float
    ph: float  # height
    wf: float  # width stretch from the viewpoint
    w: float  # shoulder width
    stride: float
    swing: float
    leg_t: float
    arm_t: float

    def y(self, f: float) -> float:
        """The image row at fraction ``f`` of the person's height."""
        return self.top + f * self.ph

    @property
    def hip_y(self) -> float:
        return self.y(0.52)

    @property
    def sh_y(self) -> float:
        return self.y(0.17)


def draw_person(
    img: np.ndarray,
    who: Identity,
    cx: float,
    top: float,
    ph: float,
    wf: float,
    rng: np.random.Generator,
    facing_back: bool,
    parts: str = "full",
) -> None:
    """Draw ``who`` into ``img`` (H, W, 3 uint8, BGR) in place.

    ``cx``/``top``/``ph``: centre x, top y and height of the person in pixels; ``wf``: width
    stretch from the camera's viewpoint. Pose (stride, arm swing) is jittered from ``rng``.
    Parts are painted back to front: legs, skirt, long hair, arms, torso, bag, head.
    """
    ph = ph * who.height
    fig = _Figure(
        cx=cx,
        top=top + ph * (1 / who.height - 1) * 0.9,  # shorter people stand on the same floor
        ph=ph,
        wf=wf,
        w=ph * 0.27 * who.width * wf,
        stride=rng.uniform(-0.09, 0.09) * ph,
        swing=rng.uniform(-0.07, 0.07) * ph,
        leg_t=ph * 0.09 * who.width * wf,
        arm_t=ph * 0.065 * who.width * wf,
    )
    _draw_legs(img, who, fig)
    if who.skirt:
        _draw_skirt(img, who, fig)
    if who.long_hair:  # hangs behind the shoulders (seen from the back mainly)
        hw = fig.w * (0.42 if facing_back else 0.36)
        cv2.rectangle(img, _pt(cx - hw, fig.y(0.06)), _pt(cx + hw, fig.y(0.27)), who.hair, -1)
    _draw_arms(img, who, fig)
    _draw_torso(img, who, fig, facing_back)
    _draw_bag(img, who, fig, facing_back)
    _draw_head(img, who, fig, facing_back)


def _draw_legs(img: np.ndarray, who: Identity, fig: _Figure) -> None:
    """Trousers down to the ankle, or skin below shorts / skirt; shoes."""
    knee_y, foot_y, leg_t = fig.y(0.74), fig.y(0.96), fig.leg_t
    bare = who.skirt or who.shorts
    for side, s in ((-1, fig.stride), (1, -fig.stride)):
        hx = fig.cx + side * fig.w * 0.22
        foot = (hx + s, foot_y)
        knee = (hx + s * 0.5, knee_y)
        _limb(img, (hx, fig.hip_y), knee, who.lower if not who.skirt else who.skin, leg_t)
        _limb(img, knee, foot, who.skin if bare else who.lower, leg_t * 0.9)
        shoe = _pt(foot[0] + side * leg_t * 0.2, foot_y)
        cv2.ellipse(img, shoe, _pt(leg_t * 0.6, leg_t * 0.3), 0, 0, 360, who.shoes, -1, cv2.LINE_AA)


def _draw_skirt(img: np.ndarray, who: Identity, fig: _Figure) -> None:
    cx, w = fig.cx, fig.w
    waist = fig.hip_y - fig.ph * 0.02
    hem = fig.y(0.72)
    corners = [(cx - w * 0.45, waist), (cx + w * 0.45, waist), (cx + w * 0.7, hem),
               (cx - w * 0.7, hem)]  # fmt: skip
    pts = np.array([_pt(*c) for c in corners], np.int32)
    cv2.fillPoly(img, [pts], who.lower, cv2.LINE_AA)


def _draw_arms(img: np.ndarray, who: Identity, fig: _Figure) -> None:
    sleeve, arm_t = who.upper, fig.arm_t
    for side, s in ((-1, fig.swing), (1, -fig.swing)):
        sx = fig.cx + side * fig.w * 0.5
        hand = (sx + side * arm_t * 0.3 + s, fig.y(0.5))
        elbow = (sx + side * arm_t * 0.2 + s * 0.5, fig.y(0.34))
        _limb(img, (sx, fig.sh_y + arm_t * 0.4), elbow, sleeve, arm_t)
        _limb(img, elbow, hand, who.skin if who.short_sleeves else sleeve, arm_t * 0.9)
        cv2.circle(img, _pt(*hand), max(1, int(arm_t * 0.5)), who.skin, -1, cv2.LINE_AA)


def _draw_torso(img: np.ndarray, who: Identity, fig: _Figure, facing_back: bool) -> None:
    """A trapezoid from shoulders to hips, then the clothing pattern on it."""
    cx, w, sh_y = fig.cx, fig.w, fig.sh_y
    waist = fig.hip_y + fig.ph * 0.02
    corners = [(cx - w * 0.5, sh_y), (cx + w * 0.5, sh_y), (cx + w * 0.42, waist),
               (cx - w * 0.42, waist)]  # fmt: skip
    torso = np.array([_pt(*c) for c in corners], np.int32)
    cv2.fillPoly(img, [torso], who.upper, cv2.LINE_AA)
    box = (
        int(round(cx - w * 0.46)),
        int(round(cx + w * 0.46)),
        int(round(sh_y)),
        int(round(waist)),
    )
    _draw_pattern(img, who, fig, box, facing_back)


def _draw_pattern(img: np.ndarray, who: Identity, fig: _Figure, box, facing_back: bool) -> None:
    x0, x1, y0, y1 = box
    tall = max(1, y1 - y0)
    if who.pattern == "stripes":
        step = max(3, int(round(tall / 5)))
        for yy in range(y0 + step // 2, y1, step):
            cv2.line(img, (x0, yy), (x1, yy), who.upper2, max(1, step // 2))
    elif who.pattern == "checks":
        step = max(3, int(round(tall / 4)))
        for yy in range(y0, y1, step):
            cv2.line(img, (x0, yy), (x1, yy), who.upper2, 1)
        for xx in range(x0, x1, step):
            cv2.line(img, (xx, y0), (xx, y1), who.upper2, 1)
    elif who.pattern == "logo" and not facing_back:
        r = max(2, int(round(fig.w * 0.2)))
        cv2.circle(img, _pt(fig.cx, y0 + tall * 0.4), r, who.upper2, -1, cv2.LINE_AA)
    elif who.pattern == "twotone":
        cv2.rectangle(img, (x0, y0 + tall // 2), (x1, y1), who.upper2, -1)


def _draw_bag(img: np.ndarray, who: Identity, fig: _Figure, facing_back: bool) -> None:
    """A backpack covers the back (straps from the front), a shoulder bag hangs at the hip."""
    cx, w, y, colour = fig.cx, fig.w, fig.y, who.bag_colour
    if who.bag == "backpack" and facing_back:
        cv2.rectangle(img, _pt(cx - w * 0.25, y(0.21)), _pt(cx + w * 0.25, y(0.42)), colour, -1)
    elif who.bag == "backpack":
        for side in (-1, 1):
            strap = cx + side * w * 0.3
            _limb(img, (strap, fig.sh_y), (strap, y(0.36)), colour, max(1.0, w * 0.1))
    elif who.bag == "shoulder":
        _limb(img, (cx - w * 0.4, fig.sh_y), (cx + w * 0.45, y(0.45)), colour, max(1.0, w * 0.07))
        cv2.rectangle(img, _pt(cx + w * 0.4, y(0.42)), _pt(cx + w * 0.75, y(0.55)), colour, -1)
    elif who.bag == "handbag":
        hx = cx - w * 0.5 - fig.arm_t * 0.2 + fig.swing
        cv2.rectangle(img, _pt(hx - w * 0.2, y(0.5)), _pt(hx + w * 0.15, y(0.62)), colour, -1)


def _draw_head(img: np.ndarray, who: Identity, fig: _Figure, facing_back: bool) -> None:
    """Head (hair from behind, face from the front), hair line, hat with its brim."""
    cx, wf, y = fig.cx, fig.wf, fig.y
    hr = fig.ph * 0.062
    head = _pt(cx, y(0.085))
    face = who.hair if facing_back else who.skin
    cv2.ellipse(img, head, _pt(hr * 0.85 * wf, hr), 0, 0, 360, face, -1, cv2.LINE_AA)
    if not facing_back:
        cv2.ellipse(
            img, head, _pt(hr * 0.9 * wf, hr * 1.05), 0, 180, 360, who.hair, -1, cv2.LINE_AA
        )
    if who.hat is not None:
        crown = _pt(cx, y(0.055))
        cv2.ellipse(img, crown, _pt(hr * 1.0 * wf, hr * 0.7), 0, 180, 360, who.hat, -1, cv2.LINE_AA)
        brim = ((cx - hr * 1.2 * wf, y(0.055)), (cx + hr * 1.2 * wf, y(0.055)))
        _limb(img, *brim, who.hat, max(1.0, hr * 0.3))


def _background(rng: np.random.Generator, cam: Camera, h: int, w: int) -> np.ndarray:
    """Camera's background (gradient floor/wall + clutter rectangles), (H, W, 3) uint8."""
    ramp = np.linspace(0.85, 1.1, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(cam.bg.astype(np.float32)[None, None] * ramp, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    n = int(rng.integers(cam.clutter[0], cam.clutter[1] + 1))
    for _ in range(n):
        c = cam.bg_palette[rng.integers(len(cam.bg_palette))] + rng.uniform(-40, 40, 3)
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        cv2.rectangle(
            img,
            (x0, y0),
            (x0 + int(rng.integers(4, w // 2)), y0 + int(rng.integers(4, h // 2))),
            tuple(float(v) for v in np.clip(c, 0, 255)),
            -1,
        )
    return img


def _camera_effects(img: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Occlusion, viewpoint mirror, colour cast, light, blur and noise: (H, W, 3) uint8."""
    h, w = img.shape[:2]
    if rng.random() < cam.occlusion_p:
        c = tuple(float(v) for v in cam.bg_palette[rng.integers(len(cam.bg_palette))])
        if rng.random() < 0.5:  # this camera's pole, slightly moved
            px = int((cam.pole_x + rng.uniform(-0.08, 0.08)) * w)
            cv2.rectangle(img, (px - w // 12, 0), (px + w // 12, h), c, -1)
        else:  # another object or person crossing: a rectangle from an edge
            ow, oh = int(rng.uniform(0.3, 0.6) * w), int(rng.uniform(0.2, 0.45) * h)
            x0 = 0 if rng.random() < 0.5 else w - ow
            y0 = int(rng.uniform(0.3, 1.0) * (h - oh))
            cv2.rectangle(img, (x0, y0), (x0 + ow, y0 + oh), c, -1)
    if cam.mirror:
        img = img[:, ::-1]
    f = img.astype(np.float32) * (1 / 255.0)
    gain = cam.gain * rng.uniform(0.95, 1.05, 3)
    f = np.power(f, cam.gamma * rng.uniform(0.93, 1.07)) * (
        gain * cam.brightness * rng.uniform(0.9, 1.1)
    )
    f = f * 255.0
    sigma = cam.blur * h / 128.0
    if sigma > 0.3:
        f = cv2.GaussianBlur(f, (0, 0), sigma)
    f += rng.normal(0.0, cam.noise, f.shape).astype(np.float32)
    return np.clip(f, 0, 255).astype(np.uint8)


def render(
    who: Optional[Identity],
    cam: Camera,
    rng: np.random.Generator,
    size: Tuple[int, int],
    crop: Optional[str] = None,
) -> np.ndarray:
    """One (H, W, 3) uint8 BGR image of ``who`` (or background only) seen by ``cam``.

    ``crop``: ``"top"``/``"bottom"`` renders a partial detection (used for distractors/junk).
    """
    h, w = size
    img = _background(rng, cam, h, w)
    if who is not None:
        ph = h * cam.scale * rng.uniform(0.95, 1.04)
        top = h * (1 - cam.scale) * 0.5 + h * cam.y_shift + rng.uniform(-0.04, 0.04) * h
        cx = w * 0.5 + rng.uniform(-0.08, 0.08) * w
        wf = cam.aspect * rng.uniform(0.95, 1.05) * (w / h) * 2.0
        draw_person(img, who, cx, top, ph, wf, rng, cam.facing_back)
        if crop is not None:
            part = img[: h // 2] if crop == "top" else img[h // 2 :]
            img = cv2.resize(part, (w, h), interpolation=cv2.INTER_LINEAR)
    return _camera_effects(img, cam, rng)


def _params(
    seed: int,
    num_train_ids: int,
    num_test_ids: int,
    num_cameras: int,
    image_size: Tuple[int, int],
    style: str,
) -> Dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "num_train_ids": int(num_train_ids),
        "num_test_ids": int(num_test_ids),
        "num_cameras": int(num_cameras),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "style": style,
    }


def _check_args(
    num_train_ids: int, num_test_ids: int, num_cameras: int, image_size: Sequence[int], style: str
) -> None:
    if style not in STYLES:
        raise InputError(f"unknown synthetic style {style!r}; available: {', '.join(STYLES)}")
    if not 2 <= num_cameras <= 6:
        raise InputError(
            f"num_cameras must be 2..6 (the Market file grammar allows c1..c6), got {num_cameras}"
        )
    if num_train_ids < 1 or num_test_ids < 1:
        raise InputError(
            f"num_train_ids and num_test_ids must be >= 1, got {num_train_ids}, {num_test_ids}"
        )
    if num_train_ids + num_test_ids > 9000:
        raise InputError("num_train_ids + num_test_ids must be <= 9000 (4-digit Market ids)")
    if len(image_size) != 2 or min(image_size) < 16:
        raise InputError(f"image_size must be (height, width), each >= 16, got {image_size}")


def _plan(
    seed: int, num_train_ids: int, num_test_ids: int, num_cameras: int
) -> List[Tuple[str, int, int, int, str]]:
    """Every image to write: (split folder, pid, camera 1-based, identity index, kind).

    Train ids: 8-20 images over 2-6 cameras. Test ids: 2..num_cameras cameras, one query and
    1-4 gallery images per camera. Plus ``0000`` distractors and ``-1`` junk in the gallery.
    """
    rng = np.random.default_rng([seed, _R_SPLIT])
    total = num_train_ids + num_test_ids
    perm = rng.permutation(total) + 1  # Market-like: train and test ids interleave
    pids = (
        sorted(int(p) for p in perm[:num_train_ids]),
        sorted(int(p) for p in perm[num_train_ids:]),
    )
    plan = []
    for index, pid in enumerate(pids[0]):
        n = int(rng.integers(8, 21))
        k = int(rng.integers(2, min(6, num_cameras) + 1))
        cams = rng.choice(num_cameras, k, replace=False) + 1
        counts = np.bincount(rng.integers(0, k, n - k), minlength=k) + 1
        for cam, c in zip(cams, counts):
            plan += [("bounding_box_train", pid, int(cam), index, "person")] * int(c)
    for j, pid in enumerate(pids[1]):
        index = num_train_ids + j
        k = int(rng.integers(2, num_cameras + 1))
        cams = sorted(int(c) for c in rng.choice(num_cameras, k, replace=False) + 1)
        for cam in cams:
            plan.append(("query", pid, cam, index, "person"))
            plan += [("bounding_box_test", pid, cam, index, "person")] * int(rng.integers(1, 5))
        if rng.random() < 0.3:
            plan.append(("bounding_box_test", -1, cams[0], index, "junk"))
    for d in range(2 * num_test_ids):
        kind = ("background", "top", "bottom", "other")[d % 4]
        plan.append(("bounding_box_test", 0, int(rng.integers(1, num_cameras + 1)), d, kind))
    return plan


def _write_all(
    tmp: str,
    seed: int,
    num_train_ids: int,
    num_test_ids: int,
    num_cameras: int,
    image_size: Tuple[int, int],
    style: DomainStyle,
) -> Dict[str, int]:
    for s in SPLITS:
        os.makedirs(os.path.join(tmp, s))
    total = num_train_ids + num_test_ids
    people = [make_identity(np.random.default_rng([seed, _R_ID, i]), style) for i in range(total)]
    cams = [
        make_camera(np.random.default_rng([seed, _R_CAM, c]), style) for c in range(num_cameras)
    ]
    plan = _plan(seed, num_train_ids, num_test_ids, num_cameras)
    counts = {s: 0 for s in SPLITS}
    frame = 0
    max_step = max(2, min(60, 999_999 // len(plan)))  # frame numbers must stay 6 digits
    name_rng = np.random.default_rng([seed, _R_SPLIT, 1])
    for n, (split, pid, cam, index, kind) in enumerate(plan):
        rng = np.random.default_rng([seed, _R_IMG, n])
        camera = cams[cam - 1]
        if kind == "person":
            img = render(people[index], camera, rng, image_size)
        elif kind == "junk":  # a bad detection of a test identity: a sliver, heavily blurred
            img = render(people[index], camera, rng, image_size, crop="bottom")
            img = cv2.GaussianBlur(img, (0, 0), 3.0)
        elif kind == "background":
            img = render(None, camera, rng, image_size)
        else:  # partial people and unrelated passers-by never in train or query
            other = make_identity(np.random.default_rng([seed, _R_DISTRACT, index]), style)
            img = render(other, camera, rng, image_size, crop=None if kind == "other" else kind)
        frame += int(name_rng.integers(1, max_step))
        seq = int(name_rng.integers(1, 7))
        box = 0 if split == "query" else int(name_rng.integers(1, 9))
        pid_s = "-1" if pid == -1 else f"{pid:04d}"
        name = f"{pid_s}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg"
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, camera.jpeg])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {name}")
        with open(os.path.join(tmp, split, name), "wb") as fh:
            fh.write(buf.tobytes())
        counts[split] += 1
    return counts


def read_manifest(out_dir: str) -> Optional[Dict]:
    """The manifest of a complete generation in ``out_dir``, or None."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _looks_generated(folder: str) -> bool:
    """Only our own output (the three split folders, a manifest) may be deleted."""
    return set(os.listdir(folder)) <= set(SPLITS) | {MANIFEST}


def generate_synthetic(
    out_dir: str,
    seed: int = 0,
    num_train_ids: int = 150,
    num_test_ids: int = 150,
    num_cameras: int = 6,
    image_size: Sequence[int] = (128, 64),
    style: str = "default",
    overwrite: bool = True,
) -> Dict:
    """Write a Market-1501-layout dataset into ``out_dir``; return its manifest.

    If ``out_dir`` already holds a generation with the same parameters, nothing is done. A
    folder without a manifest (interrupted run) or with different parameters is regenerated in
    place when ``overwrite`` (default; it only deletes folders that contain nothing but our own
    output), else a :class:`DatasetError` is raised. Images go to a temporary sibling folder
    that is renamed into place, and ``manifest.json`` is written last, so a folder with a
    manifest is always complete. ``image_size`` is (height, width).
    """
    image_size = tuple(int(v) for v in image_size)
    _check_args(num_train_ids, num_test_ids, num_cameras, image_size, style)
    params = _params(seed, num_train_ids, num_test_ids, num_cameras, image_size, style)
    out_dir = os.path.abspath(out_dir)
    existing = read_manifest(out_dir)
    if existing is not None and existing.get("params") == params:
        return existing
    parent = os.path.dirname(out_dir)
    lock = os.path.join(parent, f".{os.path.basename(out_dir)}.lock")
    # The ranks of one DDP job (or two runs sharing DATASETS.ROOT) build the same folder: one
    # builds it under the lock, the others wait and then read its manifest. Without the lock a
    # late writer replaced the folder while an early one was already reading it.
    with exclusive(lock, out_dir):
        return _generate_locked(
            out_dir,
            params,
            seed,
            num_train_ids,
            num_test_ids,
            num_cameras,
            image_size,
            style,
            overwrite,
        )


def _generate_locked(
    out_dir: str,
    params: Dict,
    seed: int,
    num_train_ids: int,
    num_test_ids: int,
    num_cameras: int,
    image_size: Tuple[int, int],
    style: str,
    overwrite: bool,
) -> Dict:
    existing = read_manifest(out_dir)
    if existing is not None and existing.get("params") == params:
        return existing
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir) or not _looks_generated(out_dir):
            raise DatasetError(
                f"synthetic: {out_dir} exists and holds files that are not a synthetic "
                f"generation; move it away or point DATASETS.ROOT elsewhere"
            )
        why = (
            "is incomplete (no manifest)"
            if existing is None
            else (f"was generated with other parameters ({existing.get('params')})")
        )
        if not overwrite:
            raise DatasetError(
                f"synthetic: {out_dir} {why}; delete it or pass overwrite=True "
                f"to regenerate it with {params}"
            )
        logger.warning("synthetic: %s %s; regenerating", out_dir, why)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(out_dir)}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        counts = _write_all(
            tmp, seed, num_train_ids, num_test_ids, num_cameras, image_size, STYLES[style]
        )
        manifest = {"params": params, "counts": counts}
        with open(os.path.join(tmp, MANIFEST), "w") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
        if os.path.exists(out_dir):
            old = f"{tmp}.old"
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("synthetic: wrote %s (%s)", out_dir, counts)
    return manifest


__all__ = [
    "DomainStyle",
    "STYLES",
    "GENERATOR_VERSION",
    "generate_synthetic",
    "read_manifest",
    "render",
    "make_identity",
    "make_camera",
]
