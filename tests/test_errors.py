"""The one test for an out-of-memory error, shared by the plugin registry and bench."""

from __future__ import annotations

import pytest
import torch

from benchbox import errors
from benchbox.bench import measure
from benchbox.hooks import registry

CPU = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
    "memory: you tried to allocate 40000000000 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), True),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), True),
        (RuntimeError(CPU), True),
        (RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"), True),
        (RuntimeError("The size of tensor a (3) must match the size of tensor b (2)"), False),
        (ValueError("out of memory"), False),
        (KeyError("x"), False),
    ],
)
def test_is_out_of_memory(exc, expected):
    assert errors.is_out_of_memory(exc) is expected


def test_the_registry_and_bench_share_it():
    # Before, the registry's took only MemoryError and torch's class, bench's also the
    # CPU allocator's RuntimeError: one failure was a plugin's bug to one, retried by the other.
    assert registry.is_out_of_memory is measure.is_out_of_memory is errors.is_out_of_memory


def test_a_cpu_allocator_failure_in_a_plugins_forward_is_not_blamed_on_the_plugin():
    class Greedy(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError(CPU)

    from benchbox.hooks.manager import get_registry

    entry = get_registry().get("fusion", "mean")  # any entry: the one that owns the model
    model = Greedy()
    with (
        pytest.raises(RuntimeError, match="can't allocate memory"),
        registry.blame_plugins([(entry, model)], "in forward"),
    ):
        model(torch.zeros(1))
