"""Verdicts: compare an observation with what was expected and explain any difference.

These run in the trusted grading process on plain data that came back from a worker.
Every failure message is written for the student: what was called on which input, what
was expected, what came back, and where the largest difference is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class GradingFailure(AssertionError):
    """A test failed because of the submission; the message is shown to the student as is."""


def fail(message: str) -> None:
    raise GradingFailure(message)


def check(condition: Any, message: str) -> None:
    """Fail with `message` unless `condition` holds. A tensor or array holds when it is not
    empty, has no NaN and all its elements are true, so that an empty or NaN answer that
    broadcasts into a comparison never passes it."""
    module = type(condition).__module__
    if isinstance(condition, torch.Tensor) or module == "numpy" or module.startswith("numpy."):
        tensor = torch.as_tensor(condition)
        if tensor.numel() == 0:
            raise GradingFailure(f"{message} (the comparison was empty: an empty result?)")
        if tensor.is_floating_point() and bool(tensor.isnan().any()):
            raise GradingFailure(f"{message} (the result holds NaN)")
        condition = bool(tensor.all())
    if not condition:
        raise GradingFailure(message)


def _as_tensor(value: Any, what: str, role: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, float, bool)) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, bool)) for v in value)
    ):
        return torch.tensor(value)
    raise GradingFailure(
        f"{what}: {role} a {type(value).__name__}, expected a tensor or a number"
    )


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in tensor.shape) + ")"


def _index(flat_index: int, shape: Sequence[int]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat_index % size)
        flat_index //= size
    return tuple(reversed(index))


def assert_shape(got: Any, shape: Sequence[int], what: str) -> None:
    tensor = _as_tensor(got, what, "returned")
    if tuple(tensor.shape) != tuple(shape):
        fail(f"{what}: expected shape ({', '.join(map(str, shape))}), got shape {_shape(tensor)}")


def observed(got: Any, what: str, *, shape: Sequence[int] | None = None,
             dtype: torch.dtype | tuple[torch.dtype, ...] | None = None,
             finite: bool = True) -> torch.Tensor:
    """`got` as a tensor, once its shape, dtype and finiteness are what was asked: call it
    before judging any value or property of an answer, so that an empty, mis-shaped or NaN
    answer fails with a message saying so instead of broadcasting into a pass."""
    tensor = _as_tensor(got, what, "returned")
    if shape is not None:
        assert_shape(tensor, shape, what)
    assert_dtype(tensor, dtype, what)
    if finite:
        assert_finite(tensor, what)
    return tensor


def _bound(got: Any, what: str) -> torch.Tensor:
    tensor = observed(got, what).to(torch.float64)
    if tensor.numel() == 0:
        fail(f"{what}: the result is empty")
    return tensor


def assert_at_least(got: Any, bound: float, what: str) -> None:
    """Fail unless every value of `got` is finite and >= bound (NaN never passes)."""
    tensor = _bound(got, what)
    if not bool((tensor >= bound).all()):
        fail(f"{what}: expected at least {bound:g}, got {tensor.min().item():.6g}")


def assert_at_most(got: Any, bound: float, what: str) -> None:
    """Fail unless every value of `got` is finite and <= bound (NaN never passes)."""
    tensor = _bound(got, what)
    if not bool((tensor <= bound).all()):
        fail(f"{what}: expected at most {bound:g}, got {tensor.max().item():.6g}")


def assert_close(
    got: Any,
    want: Any,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    what: str,
    equal_nan: bool = False,
    dtype: torch.dtype | tuple[torch.dtype, ...] | None = None,
) -> None:
    """Fail unless `got` and `want` have the same structure, shapes and close values.

    Values are compared in float64 as |got - want| <= atol + rtol * |want| elementwise.
    Containers (lists, tuples, dicts) are compared item by item, and the message says which.
    `dtype` (one dtype or a tuple of the allowed ones) is what the docstring promises: a
    tensor of another dtype fails before its values are compared.
    """
    if isinstance(want, dict):
        if not isinstance(got, dict):
            fail(f"{what}: expected a dict with keys {sorted(want)}, got a {type(got).__name__}")
        missing = [key for key in want if key not in got]
        check(not missing, f"{what}: the result has no key(s) {missing}")
        for key in want:
            assert_close(got[key], want[key], rtol=rtol, atol=atol, what=f"{what}[{key!r}]",
                         equal_nan=equal_nan, dtype=dtype)
        return
    if isinstance(want, (list, tuple)) and not all(isinstance(v, (int, float)) for v in want):
        if not isinstance(got, (list, tuple)):
            fail(f"{what}: expected a sequence of {len(want)} items, got a {type(got).__name__}")
        check(len(got) == len(want), f"{what}: expected {len(want)} items, got {len(got)}")
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, rtol=rtol, atol=atol, what=f"{what}[{i}]", equal_nan=equal_nan,
                         dtype=dtype)
        return
    if isinstance(want, str) or isinstance(got, str) or want is None or got is None:
        check(got == want, f"{what}: expected {want!r}, got {got!r}")
        return

    got_t = _as_tensor(got, what, "returned")
    want_t = _as_tensor(want, what, "the reference gave")
    if got_t.shape != want_t.shape:
        fail(f"{what}: expected shape {_shape(want_t)}, got shape {_shape(got_t)}")
    assert_dtype(got_t, dtype, what)
    if got_t.is_complex() or want_t.is_complex():
        got_f, want_f = got_t.to(torch.complex128), want_t.to(torch.complex128)
    else:
        got_f, want_f = got_t.to(torch.float64), want_t.to(torch.float64)
    got_nan, want_nan = got_f.isnan(), want_f.isnan()
    if not equal_nan and got_nan.any() and not want_nan.any():
        where = _index(int(got_nan.flatten().nonzero()[0]), got_t.shape)
        fail(
            f"{what}: the result contains {int(got_nan.sum())} NaN value(s) (first at index "
            f"{where}); the expected result has none. Look for a division by zero, the log "
            "of zero or an overflow in exp."
        )
    if got_f.numel() == 0:
        return
    got_inf = got_f.isinf() & ~want_f.isinf() & ~want_nan
    if got_inf.any():
        where = _index(int(got_inf.flatten().nonzero()[0]), got_t.shape)
        fail(f"{what}: the result contains {int(got_inf.sum())} infinite value(s) (first at "
             f"index {where}) where the expected result is finite. Look for an overflow, "
             "a division by zero or the log of zero.")
    both_nan = got_nan & want_nan
    same_inf = (got_f == want_f) & got_f.isinf()
    difference = (got_f - want_f).abs()
    difference = torch.where(both_nan | same_inf, torch.zeros_like(difference), difference)
    difference = torch.nan_to_num(difference, nan=float("inf"))
    allowed = atol + rtol * want_f.abs().nan_to_num(nan=0.0, posinf=0.0)
    bad = difference > allowed
    if bad.any():
        worst = int((difference - allowed).flatten().argmax())
        index = _index(worst, got_t.shape)
        got_value = got_f.flatten()[worst].item()
        want_value = want_f.flatten()[worst].item()
        at = f" at index {index}" if got_t.dim() else ""
        shown_got, shown_want = _distinct(got_value, want_value)
        dtypes = "" if got_t.dtype == want_t.dtype else (
            f" The result is {_dtype_name(got_t.dtype)}, the expected result "
            f"{_dtype_name(want_t.dtype)}.")
        fail(
            f"{what}: {int(bad.sum())} of {bad.numel()} value(s) differ from the expected "
            f"result. The largest difference is{at}: got {shown_got}, expected "
            f"{shown_want} (|difference| {abs(got_value - want_value):.3g}; "
            f"allowed {atol:g} + {rtol:g} * |expected|).{dtypes}"
        )


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _distinct(got: Any, want: Any) -> tuple[str, str]:
    """The two values with 6 significant digits, or as many more (up to 17) as it takes for
    them to read differently: "got 0.029069, expected 0.029069" says nothing."""
    for digits in range(6, 18):
        shown = f"{got:.{digits}g}", f"{want:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return f"{got:.17g}", f"{want:.17g}"


def assert_dtype(got: Any, dtype: torch.dtype | tuple[torch.dtype, ...] | None,
                 what: str) -> None:
    """Fail unless `got` is a tensor of `dtype` (or of one of the dtypes of a tuple)."""
    if dtype is None:
        return
    allowed = dtype if isinstance(dtype, tuple) else (dtype,)
    tensor = _as_tensor(got, what, "returned")
    if tensor.dtype not in allowed:
        names = " or ".join(str(d).removeprefix("torch.") for d in allowed)
        fail(f"{what}: returned a tensor of dtype {str(tensor.dtype).removeprefix('torch.')}; "
             f"the docstring asks for {names}")


def assert_finite(got: Any, what: str) -> None:
    tensor = _as_tensor(got, what, "returned")
    if (tensor.is_floating_point() or tensor.is_complex()) and not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).flatten().nonzero()[0].item()
        fail(
            f"{what}: the result contains NaN or infinite values (first at index "
            f"{_index(int(bad), tensor.shape)})"
        )
