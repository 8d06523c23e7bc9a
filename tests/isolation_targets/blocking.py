"""A module that cannot load in an isolated subinterpreter: it imports msgspec at the top.

Its self-contained functions can still be shipped as code; the others are NotIsolatable.
"""

from __future__ import annotations

import math

import msgspec

from subiso import offload

FACTOR = 3


def square(x: int) -> int:
    return x * x


def where() -> int:
    import _interpreters

    return int(_interpreters.get_current()[0])


def hypot(a: float, b: float = 4.0) -> float:
    return math.sqrt(a * a + b * b)


def fact(n: int) -> int:
    return 1 if n <= 1 else n * fact(n - 1)


@offload
def offloaded_cube(x: int) -> tuple[int, int]:
    import _interpreters

    return x * x * x, int(_interpreters.get_current()[0])


def uses_msgspec(x: object) -> bytes:
    return msgspec.json.encode(x)


def uses_factor(x: int) -> int:
    return x * FACTOR


def make_closure(k: int):  # type: ignore[no-untyped-def]
    def inner(x: int) -> int:
        return x + k

    return inner
