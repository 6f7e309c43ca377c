"""Normal draws of the trusted side that are the same numbers on every CPU.

A test draws its inputs in the trusted process (`torch.randn(..., generator=rng)`), and the
student release finds the expected observation for them by a hash of those inputs, so the
draws must be the same bits on the machine that recorded the snapshots and on every student's
machine. torch's float32 normal sampler is not: from one seed its AVX2 kernel (Sleef's
vectorised log, cos and sin) gives other last bits than the generic kernel that Apple silicon,
ARM and older x86 CPUs run (`ATEN_CPU_CAPABILITY=default` reproduces that path on an x86
machine), and every float32 input built from those draws misses its snapshot.

`PortableDraws`, active while a lab's test runs, draws every normal sample in float64 and
rounds it to float32 precision. torch's float64 sampler is scalar code on every CPU (its
Box-Muller runs the C library's double `log`, `cos` and `sin` on uniform bits taken from the
generator with integer arithmetic), and two C libraries that differ in a double's last bit
round to different float32 values only when the exact value lies within that bit of a float32
rounding boundary: about 2**-29 of the draws. So the draws depend on the seed alone. Draws of
fewer than 16 numbers keep the values torch gave before (its float32 sampler already takes the
scalar float64 path for them); larger ones are new values of the same distribution.

Covered: `torch.randn`, `torch.randn_like`, `torch.normal`, `Tensor.normal_` on the CPU.
Uniform, integer and permutation draws (`torch.rand`, `randint`, `randperm`, `multinomial`) are
integer arithmetic on the generator's bits and already the same everywhere, as are numpy's.
What tests compute from the draws (a softmax, a matrix product) may still differ in its last
bits: observations.py matches those inputs within a tolerance instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

PORTABLE = torch.float32  # the precision every normal draw is rounded to


def _size(args: Sequence[Any], kwargs: dict) -> tuple[int, ...]:
    if "size" in kwargs:
        return tuple(kwargs["size"])
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return tuple(args[0])
    return tuple(args)


def standard_normal(shape: Sequence[int], generator: torch.Generator | None,
                    dtype: torch.dtype) -> torch.Tensor:
    """Standard normal draws of `shape` as `dtype`, the same values on every CPU."""
    drawn = torch.randn(tuple(shape), generator=generator, dtype=torch.float64)
    return drawn.to(PORTABLE).to(dtype)


def _on_cpu(kwargs: dict, *tensors: Any) -> bool:
    device = kwargs.get("device")
    if device is not None and torch.device(device).type != "cpu":
        return False
    return all(t.device.type == "cpu" for t in tensors if isinstance(t, torch.Tensor))


class PortableDraws(TorchFunctionMode):
    """While active, torch's normal samplers draw the CPU-independent values described above."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is torch.randn and "out" not in kwargs and _on_cpu(kwargs):
            return self._randn(_size(args, kwargs), kwargs)
        if func is torch.randn_like and _on_cpu(kwargs, *args):
            like = args[0]
            kwargs.setdefault("dtype", like.dtype)
            return self._randn(tuple(like.shape), kwargs)
        if func is torch.normal and "out" not in kwargs and _on_cpu(kwargs, *args):
            return self._normal(args, kwargs)
        if func is torch.Tensor.normal_ and _on_cpu({}, *args):
            return self._normal_(*args, **kwargs)
        return func(*args, **kwargs)

    @staticmethod
    def _randn(shape: tuple[int, ...], kwargs: dict) -> torch.Tensor:
        dtype = kwargs.get("dtype") or torch.get_default_dtype()
        drawn = standard_normal(shape, kwargs.get("generator"), dtype)
        if kwargs.get("requires_grad"):
            drawn.requires_grad_(True)
        return drawn

    @staticmethod
    def _normal(args: Sequence[Any], kwargs: dict) -> torch.Tensor:
        names = ("mean", "std", "size")
        values = dict(zip(names, args, strict=False))
        values.update({name: kwargs[name] for name in names if name in kwargs})
        mean, std = values.get("mean", 0.0), values.get("std", 1.0)
        tensors = [value for value in (mean, std) if isinstance(value, torch.Tensor)]
        if tensors:
            shape = torch.broadcast_shapes(*(t.shape for t in tensors))
            dtype = torch.result_type(mean, std)
        else:
            shape = tuple(values["size"])
            dtype = kwargs.get("dtype") or torch.get_default_dtype()
        drawn = standard_normal(shape, kwargs.get("generator"), dtype)
        return drawn * std + mean

    @staticmethod
    def _normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        drawn = standard_normal(tensor.shape, generator, tensor.dtype)
        return tensor.copy_(drawn * std + mean)
