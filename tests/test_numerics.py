"""Snapshots recorded on one CPU are found on another: the trusted side's normal draws are the
same bits under torch's generic kernels (draws.py), an input computed from them that differs in
its last bits finds the snapshot of the nearest recorded arguments (observations.near), and a
submission's worker can be given other numerics than the reference's (the crosscheck gate)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from autograder import REPO_ROOT
from autograder.engine.observations import (
    ReferenceObservations,
    ReferenceUnavailable,
    near,
)
from autograder.engine.plugin import STUDENT_NUMERICS, student_numerics
from autograder.engine.runner import Implementation

DRAWS = textwrap.dedent("""
    import hashlib, torch
    from autograder.engine.draws import PortableDraws
    digest = hashlib.sha256()
    torch.manual_seed(5)  # randn_like draws from the global generator
    with PortableDraws():
        generator = torch.Generator().manual_seed(1234)
        for tensor in (torch.randn(1000, generator=generator),
                       torch.randn(3, 40, generator=generator, dtype=torch.float64),
                       torch.normal(torch.zeros(64), 2.0, generator=generator),
                       torch.empty(100).normal_(generator=generator),
                       torch.randn_like(torch.zeros(50))):
            digest.update(tensor.numpy().tobytes())
    print(digest.hexdigest())
""")


def _run_draws(**numerics: str) -> str:
    env = {**os.environ, **numerics}
    completed = subprocess.run([sys.executable, "-c", DRAWS], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True, timeout=120, check=True)
    return completed.stdout.strip()


def test_normal_draws_are_the_same_under_torchs_generic_kernels():
    """torch's own float32 sampler gives other bits without AVX2; the engine's does not."""
    assert _run_draws() == _run_draws(ATEN_CPU_CAPABILITY="default", MKL_CBWR="COMPATIBLE")


def test_small_draws_keep_torchs_values():
    from autograder.engine.draws import PortableDraws

    with PortableDraws():
        portable = torch.randn(15, generator=torch.Generator().manual_seed(7))
    assert torch.equal(portable, torch.randn(15, generator=torch.Generator().manual_seed(7)))


def test_near_accepts_last_bits_and_refuses_other_draws():
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rounded = x.softmax(dim=-1)
    last_bits = rounded * (1 + 4 * torch.finfo(torch.float64).eps)
    assert near([[last_bits, 3], {"k": 2.0}], [[rounded, 3], {"k": 2.0}])
    assert not near([[rounded * (1 + 1e-9), 3], {}], [[rounded, 3], {}])
    assert not near([[rounded, 4], {}], [[rounded, 3], {}])
    assert not near([[rounded.float(), 3], {}], [[rounded, 3], {}])
    infinite = rounded.clone()
    infinite[0, 0] = float("-inf")
    assert near(infinite, infinite.clone()) and not near(rounded, infinite)


def test_a_snapshot_is_found_for_arguments_that_differ_in_their_last_bits(tmp_path):
    class Live:
        def call(self, target, *args, timeout=None, **kwargs):
            return args[0].sum()

    x = torch.randn(6, generator=torch.Generator().manual_seed(1)).softmax(dim=0)
    ReferenceObservations(live=Live(), record_dir=tmp_path).call("m.f", x, scale=2)
    store = ReferenceObservations(snapshot_dir=tmp_path)
    assert torch.equal(store.call("m.f", x, scale=2), x.sum())
    nudged = x.nextafter(torch.ones_like(x))
    assert torch.equal(store.call("m.f", nudged, scale=2), x.sum())
    for other in ((x.flip(0),), (nudged,)):
        with pytest.raises(ReferenceUnavailable, match="no stored expected output"):
            store.call("m.f", *other, scale=3 if other[0] is nudged else 2)


def test_student_numerics_reach_the_worker(tmp_path, monkeypatch):
    (tmp_path / "which.py").write_text(textwrap.dedent("""
        import os, torch
        def numerics():
            return [os.environ.get("ATEN_CPU_CAPABILITY", ""), torch.get_num_threads()]
    """))
    monkeypatch.setenv(STUDENT_NUMERICS, "threads=2 ATEN_CPU_CAPABILITY=default")
    threads, numerics = student_numerics()
    with Implementation(tmp_path, threads=threads, environment=numerics,
                        default_timeout=60) as implementation:
        assert implementation.call("which.numerics") == ["default", 2]
    monkeypatch.setenv(STUDENT_NUMERICS, "LD_PRELOAD=/x.so")
    with pytest.raises(pytest.UsageError, match="not threads=N"):
        student_numerics()
