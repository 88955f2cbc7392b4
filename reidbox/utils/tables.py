"""Markdown tables: the one writer behind every table reidbox prints or saves."""

from __future__ import annotations

from typing import Any, Optional, Sequence


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], right: Optional[Sequence[bool]] = None
) -> str:
    """A Markdown table, columns padded to their widest cell; integers get thousands
    separators and a ``|`` inside a cell is escaped. ``right``: which columns are
    right-aligned (default: all but the first, i.e. names then numbers)."""
    n = len(header)
    right = [i > 0 for i in range(n)] if right is None else list(right)

    def text(v: Any) -> str:
        s = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
        return s.replace("|", "\\|")

    cells = [[text(h) for h in header]] + [[text(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(n)]
    lines = []
    for k, r in enumerate(cells):
        lines.append(
            "| "
            + " | ".join(
                c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
            )
            + " |"
        )
        if k == 0:
            lines.append(
                "|"
                + "|".join("-" * (w + 1) + (":" if right[i] else "-") for i, w in enumerate(widths))
                + "|"
            )
    return "\n".join(lines)
