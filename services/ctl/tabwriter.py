"""Go's text/tabwriter, the part kubectl uses, so that kyb's tables and
describe output line up exactly as kubectl's do.

Cells are separated by tabs; a cell is aligned only if a tab ends it (the
text after a line's last tab is never padded). A column's width is set per
*block*: a run of consecutive lines that all have a cell in that column. That
is why a line without tabs ("Containers:") starts a fresh alignment below it.
"""

from __future__ import annotations

from collections.abc import Iterable


def tabwrite(lines: Iterable[str], *, padding: int, minwidth: int = 0) -> list[str]:
    """Align tab-separated ``lines`` like ``tabwriter.NewWriter(w, minwidth,
    _, padding, ' ', 0)``; trailing spaces are stripped."""
    cells = [line.split("\t") for line in lines]
    out: list[str] = []

    def write(widths: list[int], start: int, end: int) -> None:
        for row in cells[start:end]:
            text = []
            for j, cell in enumerate(row):
                if j < len(row) - 1 and j < len(widths):
                    text.append(cell.ljust(widths[j]))
                else:
                    text.append(cell)
            out.append("".join(text).rstrip())

    def format_block(widths: list[int], start: int, end: int) -> None:
        column = len(widths)
        this = start
        while this < end:
            if column >= len(cells[this]) - 1:
                this += 1
                continue
            write(widths, start, this)
            start = this
            width = minwidth
            while this < end and column < len(cells[this]) - 1:
                width = max(width, len(cells[this][column]) + padding)
                this += 1
            format_block(widths + [width], start, this)
            start = this
        write(widths, start, end)

    format_block([], 0, len(cells))
    return out


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A kubectl table: tabwriter with minwidth 6 and padding 3."""
    return tabwrite(["\t".join(row) for row in [headers, *rows]], padding=3, minwidth=6)
