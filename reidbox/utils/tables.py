"""Markdown tables: the one writer behind every table reidbox prints or saves."""

from __future__ import annotations

from typing import Any, Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, columns padded to their widest cell; the first column left-aligned,
    the others right-aligned (numbers); integers get thousands separators."""
    cells = [list(map(str, header))] + [[f"{v:,}" if isinstance(v, int) and not isinstance(
        v, bool) else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                       for i, (c, w) in enumerate(zip(r, widths))) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":")
                                        for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)
