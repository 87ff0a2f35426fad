"""Kubernetes resource quantities ("100m", "128Mi", "1e3") as exact fractions.

Exact arithmetic matters: the scheduler sums requests and compares them with
allocatable, and "0.1" CPU must add up to exactly "100m". Conversions to
integers round up, like Kubernetes' Quantity.Value and MilliValue.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction


class QuantityError(ValueError):
    """A quantity string that does not parse."""


QUANTITY_REGEX = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

_NUMBER_RE = re.compile(r"^([+-]?)([0-9]*)(?:\.([0-9]*))?$")
_QUANTITY_RE = re.compile(QUANTITY_REGEX)

_DECIMAL = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
}
_BINARY = {
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30),
    "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
_EXPONENT_RE = re.compile(r"^[eE]([-+]?[0-9]+)$")
_MAX_EXPONENT = 1000  # bounds the work a hostile "1e999999999" can cause
_MAX_DIGITS = 1000  # and a hostile 5000-digit number (int() refuses past 4300)


def _quote(text: str) -> str:
    """Quote user text on one line, escaping newlines and quotes."""
    return json.dumps(text, ensure_ascii=False)


def _format_error(text: str) -> QuantityError:
    return QuantityError(
        f"invalid quantity {_quote(text)}: quantities must match the regular expression "
        f"'{QUANTITY_REGEX}'")


def _multiplier(suffix: str, text: str) -> Fraction:
    if suffix in _DECIMAL:
        return _DECIMAL[suffix]
    if suffix in _BINARY:
        return _BINARY[suffix]
    m = _EXPONENT_RE.fullmatch(suffix)
    if m is None:
        raise QuantityError(f"invalid quantity {_quote(text)}: unable to parse quantity's suffix")
    exp = int(m.group(1))
    if abs(exp) > _MAX_EXPONENT:
        raise QuantityError(f"invalid quantity {_quote(text)}: exponent out of range")
    return Fraction(10) ** exp


def parse_quantity(text: str) -> Fraction:
    """The exact value of a quantity string. Raises QuantityError."""
    if not isinstance(text, str):
        raise QuantityError(f"invalid quantity {text!r}: must be a string")
    m = _QUANTITY_RE.fullmatch(text)
    if m is None:
        raise _format_error(text)
    number, suffix = m.groups()
    n = _NUMBER_RE.fullmatch(number)
    if n is None or not (n.group(2) or n.group(3)):
        raise _format_error(text)
    sign, whole, frac = n.group(1), n.group(2) or "0", n.group(3) or ""
    if len(whole) + len(frac) > _MAX_DIGITS:
        raise QuantityError(f"invalid quantity {_quote(text[:40] + '...')}: more than "
                            f"{_MAX_DIGITS} digits")
    value = Fraction(int(whole + frac), 10 ** len(frac)) * _multiplier(suffix, text)
    return -value if sign == "-" else value


def milli_value(q: Fraction) -> int:
    """The quantity in thousandths, rounded up (Kubernetes' MilliValue)."""
    return math.ceil(q * 1000)


def value(q: Fraction) -> int:
    """The quantity as an integer, rounded up (Kubernetes' Value)."""
    return math.ceil(q)


def cpu_millis(text: str) -> int:
    """CPU in millicores: "250m" -> 250, "1.5" -> 1500."""
    return milli_value(parse_quantity(text))


def memory_bytes(text: str) -> int:
    """Memory (or any byte count) in bytes: "128Mi" -> 134217728."""
    return value(parse_quantity(text))


_DECIMAL_UP = [("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6),
               ("k", 10**3)]
_BINARY_UP = [("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20),
              ("Ki", 2**10)]


def format_quantity(q: Fraction, binary: bool = False) -> str:
    """A short canonical string for ``q``: the largest suffix that keeps it
    an integer ("1500m" -> "1500m", 1024 -> "1Ki" when binary); fractions
    smaller than a nano round up, as Kubernetes does."""
    if q < 0:
        return "-" + format_quantity(-q, binary)
    if q.denominator == 1:
        n = q.numerator
        if n == 0:
            return "0"
        for suffix, size in _BINARY_UP if binary else _DECIMAL_UP:
            if n % size == 0:
                return f"{n // size}{suffix}"
        return str(n)
    for suffix, scale in (("m", 10**3), ("u", 10**6), ("n", 10**9)):
        scaled = q * scale
        if scaled.denominator == 1 or suffix == "n":
            return f"{math.ceil(scaled)}{suffix}"
    raise AssertionError("unreachable")
