"""Named evaluation protocols: which gallery entries are junk, which AP, which CMC, which mean.

Each protocol reproduces one reference implementation (see docs/evaluation.md and
shared/reference/EVALUATION.md for the measured differences between them).
"""

from __future__ import annotations

from dataclasses import dataclass
from ..errors import UnknownNameError

AP_MODES = ("step", "trapezoid", "sklearn", "sklearn_pre019")


@dataclass(frozen=True)
class Protocol:
    """How one reference turns a ranked gallery list into CMC / AP numbers.

    junk_minus1: gallery pid -1 is junk for every query (Market-1501 Matlab code).
    cmc: "first" (first-hit), "allshots" (Open-ReID: every match ranked as if alone),
        "sgs_junkfree" (single gallery shot on the junk-free list, torchreid ``eval_cuhk03``),
        "sgs_othercam" (single gallery shot on other-camera entries only, Open-ReID cuhk03).
    ap_mode: default AP formula (see ``AP_MODES``).
    mean_over: "valid" (queries with a match) or "all" (no-match queries count 0).
    cmc_over: as ``mean_over``, for the CMC.
    warn_invalid: warn when some query has no valid match (the reference would give NaN).
    same_camera_matches: a gallery image of the query's identity counts as a match even from
        the query's camera (otherwise junk); for single-camera data (docs/custom_dataset.md).
    """

    name: str
    junk_minus1: bool = False
    cmc: str = "first"
    ap_mode: str = "step"
    mean_over: str = "valid"
    cmc_over: str = "valid"
    warn_invalid: bool = False
    same_camera_matches: bool = False


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("market1501"),
        Protocol(
            "market1501_official",
            junk_minus1=True,
            ap_mode="trapezoid",
            mean_over="all",
            cmc_over="all",
        ),
        Protocol("msmt17_official", ap_mode="trapezoid", cmc_over="all", warn_invalid=True),
        Protocol("openreid_market1501", ap_mode="sklearn"),
        Protocol("openreid_allshots", cmc="allshots", ap_mode="sklearn"),
        Protocol("openreid_cuhk03", cmc="sgs_othercam", ap_mode="sklearn"),
        Protocol("cuhk03_classic", cmc="sgs_junkfree"),
        # market1501 rules, but same-camera images of the query's identity are matches
        Protocol("same_camera", same_camera_matches=True),
    )
}

#: Repeats of the single-gallery-shot draw, as in torchreid and Open-ReID.
SGS_REPEATS = 10


def get_protocol(name: str) -> Protocol:
    """Look a protocol up by name, with an error that lists the valid names."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown evaluation protocol {name!r}; available: {', '.join(PROTOCOLS)} "
            "(set TEST.PROTOCOL to one of them)"
        ) from None
