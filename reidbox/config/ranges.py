"""Check a config against ``defaults.RANGES`` (each key's valid range, declared with the key)."""

from __future__ import annotations

import math
import re
from typing import Any, List, Optional, Tuple

from yacs.config import CfgNode

from .defaults import RANGES
from ..errors import InputError

_INTERVAL = re.compile(r"^([\[(])\s*([-+\w.]+)\s*,\s*([-+\w.]+)\s*([\])])$")
_LIST = re.compile(r"^(?:(\d+) x|each) (.+)$")


def _num(text: str) -> float:
    return float(text)  # "inf" and "-inf" parse too


def _check_scalar(value: Any, spec: str) -> Optional[str]:
    """None if ``value`` fits ``spec``, else what it must be."""
    if spec.startswith("{"):
        choices = [c.strip() for c in spec.strip("{}").split(",")]
        return None if str(value) in choices else f"one of {', '.join(choices)}"
    m = _INTERVAL.match(spec)
    if not m:
        raise InputError(f"bad range spec {spec!r}")
    lo_b, lo, hi, hi_b = m.group(1), _num(m.group(2)), _num(m.group(3)), m.group(4)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"a number in {spec}"
    ok = (value > lo or (lo_b == "[" and value == lo)) and (
        value < hi or (hi_b == "]" and value == hi)
    )
    if isinstance(value, float) and math.isnan(value):
        ok = False
    return None if ok else f"in {spec}"


def _suggest(value: Any, spec: str) -> Optional[str]:
    """The nearest valid value of an interval (for the fix in the message)."""
    m = _INTERVAL.match(spec)
    if not m or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    lo, hi = _num(m.group(2)), _num(m.group(3))
    near = lo if value <= lo else hi
    if not math.isfinite(near):
        return None
    if m.group(1 if near == lo else 4) in "()":
        return None  # open bound: no nearest value to offer
    return str(int(near)) if isinstance(value, int) else str(near)


def _default(key: str) -> Any:
    from .defaults import get_cfg_defaults

    node: Any = get_cfg_defaults()
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            return None
        node = node[part]
    return node


def check_value(key: str, value: Any, spec: str) -> Optional[str]:
    """One line saying why ``key = value`` is outside ``spec`` (None when it is inside)."""
    m = _LIST.match(spec)
    if m:
        if not isinstance(value, (list, tuple)):
            return f"{key} is {value!r}; it must be a list ({spec})"
        if m.group(1) and len(value) != int(m.group(1)):
            return (
                f"{key} is {list(value)!r}; it must be a list of {m.group(1)} values, each "
                f"{m.group(2)}"
            )
        for i, v in enumerate(value):
            why = _check_scalar(v, m.group(2))
            if why:
                return f"{key}[{i}] is {v!r} in {list(value)!r}; each value must be {why}"
        return None
    why = _check_scalar(value, spec)
    if why is None:
        return None
    near = _suggest(value, spec)
    default = _default(key)
    if near is not None and float(near) == 0.0 and isinstance(default, (int, float)) and default:
        near = str(default)  # a bound of 0 works but does nothing (lr 0 trains nothing)
    fix = f" (e.g. {key} {near})" if near is not None else ""
    return f"{key} is {value!r}; it must be {why}{fix}"


def _flatten(node: CfgNode, prefix: str = "") -> List[Tuple[str, Any]]:
    out = []
    for k, v in node.items():
        if isinstance(v, CfgNode):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def range_errors(cfg: CfgNode) -> List[str]:
    """Every key of ``cfg`` outside its declared range, one line each."""
    values = dict(_flatten(cfg))
    errors = []
    for key, spec in RANGES.items():
        if key in values:
            why = check_value(key, values[key], spec)
            if why:
                errors.append(why)
    return errors
