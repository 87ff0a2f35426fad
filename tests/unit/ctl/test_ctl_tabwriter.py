"""Go tabwriter semantics, as kubectl's tables and describe output use them."""

from __future__ import annotations

from services.ctl import tabwriter


def test_tabwriter_pads_every_cell_but_the_last():
    assert tabwriter.tabwrite(["a\tbb\tc", "aaa\tb\tcccc"], padding=2) == [
        "a    bb  c",
        "aaa  b   cccc",
    ]


def test_tabwriter_line_without_tabs_ends_the_block():
    lines = ["Name:\tweb", "Containers:", "  main:\tx", "  Image:\tnginx", "Status:\tok"]
    assert tabwriter.tabwrite(lines, padding=2) == [
        "Name:  web",
        "Containers:",
        "  main:   x",
        "  Image:  nginx",
        "Status:   ok",  # same block as the lines above it
    ]


def test_tabwriter_inner_columns_align_within_their_own_block():
    lines = ["a\tb\tc", "aa\tbbbb\tc", "aaaa\tx", "a\tb\tc"]
    assert tabwriter.tabwrite(lines, padding=1) == [
        "a    b    c",
        "aa   bbbb c",
        "aaaa x",
        "a    b c",
    ]


def test_tabwriter_table_has_minimum_width_six_and_padding_three():
    assert tabwriter.table(["A", "B"], [["x", "y"]]) == ["A     B", "x     y"]
    assert tabwriter.table(["NAME", "AGE"], [["web-long", "5s"]]) == [
        "NAME       AGE", "web-long   5s"]


def test_tabwriter_strips_trailing_spaces():
    assert tabwriter.tabwrite(["Name:\t", "IP:\t"], padding=2) == ["Name:", "IP:"]
