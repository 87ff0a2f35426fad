"""Resource quantities: exact parsing and Kubernetes' rounding."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.quantity import (
    QuantityError,
    cpu_millis,
    format_quantity,
    memory_bytes,
    milli_value,
    parse_quantity,
    value,
)


@pytest.mark.parametrize("text, expected", [
    ("0", 0),
    ("1", 1),
    ("+2", 2),
    ("-3", -3),
    ("1.5", Fraction(3, 2)),
    (".5", Fraction(1, 2)),
    ("5.", 5),
    ("100m", Fraction(1, 10)),
    ("250u", Fraction(1, 4000)),
    ("3n", Fraction(3, 10**9)),
    ("2k", 2000),
    ("1M", 10**6),
    ("1G", 10**9),
    ("1T", 10**12),
    ("1P", 10**15),
    ("1E", 10**18),
    ("1Ki", 1024),
    ("128Mi", 128 * 2**20),
    ("1.5Gi", 3 * 2**29),
    ("1Ti", 2**40),
    ("1Pi", 2**50),
    ("1Ei", 2**60),
    ("1e3", 1000),
    ("1E3", 1000),
    ("5e-1", Fraction(1, 2)),
    ("2e+2", 200),
])
def test_parse_quantity_values(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1K", "1Kb", "1Ki5", "1e", "1.2.3", ".", "+",
                                  " 1", "1 ", "1\n", "1mi", "m", "1ee3", "1e99999"])
def test_parse_quantity_rejects(text):
    with pytest.raises(QuantityError) as err:
        parse_quantity(text)
    assert "\n" not in str(err.value)
    assert repr(text)[1:-1] in str(err.value) or text in str(err.value)


def test_parse_quantity_error_quotes_the_regex():
    with pytest.raises(QuantityError, match=r"quantities must match the regular expression "
                                            r"'\^\(\[\+-\]\?\[0-9\.\]\+\)"):
        parse_quantity("abc")


def test_quantity_error_is_a_value_error():
    assert issubclass(QuantityError, ValueError)


@pytest.mark.parametrize("text, millis, whole", [
    ("100m", 100, 1),
    ("1", 1000, 1),
    ("1.5", 1500, 2),
    ("0.0001", 1, 1),
    ("1n", 1, 1),
    ("-1.5", -1500, -1),
    ("0", 0, 0),
])
def test_milli_value_and_value_round_up(text, millis, whole):
    q = parse_quantity(text)
    assert milli_value(q) == millis
    assert value(q) == whole


def test_cpu_millis_and_memory_bytes():
    assert cpu_millis("250m") == 250
    assert cpu_millis("2") == 2000
    assert memory_bytes("128Mi") == 134217728
    assert memory_bytes("1G") == 10**9
    assert memory_bytes("1.5") == 2


@pytest.mark.parametrize("q, binary, text", [
    (Fraction(0), False, "0"),
    (Fraction(1500), False, "1500"),
    (Fraction(2000), False, "2k"),
    (Fraction(1, 10), False, "100m"),
    (Fraction(1, 4000), False, "250u"),
    (Fraction(1024), True, "1Ki"),
    (Fraction(128 * 2**20), True, "128Mi"),
    (Fraction(-3000), False, "-3k"),
])
def test_format_quantity(q, binary, text):
    assert format_quantity(q, binary=binary) == text
    assert parse_quantity(text) == q


@given(st.fractions(min_value=0, max_value=10**12, max_denominator=10**9))
def test_format_quantity_parses_back_within_a_nano(q):
    back = parse_quantity(format_quantity(q))
    assert q <= back <= q + Fraction(1, 10**9)


def test_huge_numbers_are_refused_cleanly_not_with_int_conversion_errors():
    with pytest.raises(QuantityError, match="more than 1000 digits"):
        parse_quantity("9" * 5000)
    assert parse_quantity("1" + "0" * 900) == 10 ** 900
