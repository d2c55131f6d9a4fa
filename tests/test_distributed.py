"""One run across processes (DDP): the sharded batches, the seeds, the batch rule, and
real 2-process runs on the CPU (gloo) compared with the single-process run."""

from __future__ import annotations

import pytest
import torch

from benchbox import distributed
from benchbox.errors import ConfigError
from benchbox.train import make_loader


class _Indices(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@pytest.mark.parametrize(("n", "batch", "world"), [(20, 8, 2), (21, 8, 4), (6, 8, 2)])
def test_the_ranks_shares_make_the_single_process_batches(n, batch, world):
    data = _Indices(n)
    single = make_loader(data, batch, shuffle=True, seed=3, drop_last=True)
    ranks = [
        make_loader(data, batch, shuffle=True, seed=3, drop_last=True, rank=r, world_size=world)
        for r in range(world)
    ]
    assert all(len(loader) == len(single) for loader in ranks)
    for _epoch in range(3):  # reshuffled every epoch, identically on every rank
        expected = [b.tolist() for b in single]
        shares = [[b.tolist() for b in loader] for loader in ranks]
        got = [sum((shares[r][k] for r in range(world)), []) for k in range(len(expected))]
        assert got == expected
        for k in range(len(expected)):  # contiguous, equal and disjoint shares
            assert {len(shares[r][k]) for r in range(world)} == {len(expected[k]) // world}


def test_rank_seeds():
    assert distributed.rank_seed(7, 0) == 7
    seeds = {distributed.rank_seed(7, r) for r in range(1, 5)}
    assert len(seeds) == 4 and 7 not in seeds
    assert distributed.rank_seed(7, 1) == distributed.rank_seed(7, 1)
    assert distributed.rank_seed(7, 1) != distributed.rank_seed(8, 1)


def test_the_global_batch_must_split_evenly():
    distributed.check_batches(16, 100, 2)
    distributed.check_batches(16, 6, 2)  # the whole split (6) is the one batch
    distributed.check_batches(15, 100, 1)
    with pytest.raises(ConfigError, match="--batch-size 15 does not split evenly over 2"):
        distributed.check_batches(15, 100, 2)
    with pytest.raises(ConfigError, match=r"training split \(5 images"):
        distributed.check_batches(16, 5, 2)


def test_environment(monkeypatch):
    for key in distributed.ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    assert distributed.env_world() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.env_world() == (1, 2, 1, 2)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="inconsistent"):
        distributed.env_world()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="malformed"):
        distributed.env_world()


def test_device_rules():
    assert distributed.resolve_device("cpu", 1, 2) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert distributed.resolve_device("auto", 1, 2) == torch.device("cpu")
