"""One run across processes: DistributedDataParallel under ``torchrun``.

``torchrun --nproc-per-node N -m benchbox run ...`` (or ``benchbox run --nproc N``,
:mod:`benchbox.engine.launch`) starts N copies of the run. Each process:

* reads its rank from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)
  and joins the process group: ``gloo`` on the CPU, ``nccl`` on CUDA with one GPU per
  process (``cuda:LOCAL_RANK``);
* checks and builds the run exactly as a single process does (a bad option fails on
  every rank before the group is joined, so nothing waits for it);
* trains its share of every batch: ``--batch-size`` is the **global** batch. Every rank
  draws the same global batches as a single-process run of the same seed and keeps its
  contiguous share (:class:`ShardedBatchSampler`), so a step sees the same images in
  total whatever the number of processes; the batch (or the whole training split when
  it is smaller) must split evenly. DDP averages the gradients over the ranks, which for
  a loss that is a mean over images gives the gradient of the single-process step;
* leaves the random draws of rank 0 as a single-process run's, and reseeds the others
  (dropout, augmentation) with :func:`rank_seed`.

Rank 0 alone validates, selects the checkpoint (its decision to stop early is broadcast
to the others after every epoch), tests, and writes the run folder and the leaderboard
row, which record the world size; the other ranks train and exit. Training images/s are
global (every rank's images over rank 0's step times; the ranks wait for each other at
every gradient all-reduce).

What differs from one process: BatchNorm layers normalise each rank's share with its own
statistics (DDP does not synchronise them; rank 0's running statistics are the ones
kept), and a loss that is not a mean over images (the batch Dice of ``dice`` and
``hybrid``) is computed per share. With a per-image loss and no BatchNorm the runs agree
to rounding (``tests/test_distributed.py`` measures it).
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchbox.errors import BenchboxError, ConfigError

__all__ = [
    "ENV_KEYS",
    "TIMEOUT_ENV",
    "Distributed",
    "DistributedError",
    "ShardedBatchSampler",
    "check_batches",
    "describe",
    "env_world",
    "is_collective_failure",
    "joined",
    "lost_peer",
    "peers_checked",
    "rank_seed",
    "resolve_device",
    "start",
    "stop",
    "timeout",
]

#: torchrun's environment: a process with ``WORLD_SIZE`` set runs distributed.
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
#: Seconds a collective waits for the other ranks before failing (rank 0 validates and
#: tests alone while the others wait at the next broadcast); default 30 minutes.
TIMEOUT_ENV = "BENCHBOX_DDP_TIMEOUT"


class DistributedError(BenchboxError):
    """A process of a distributed run lost its peers, or the group could not start."""


def rank_seed(seed: int, rank: int) -> int:
    """The seed of ``rank``'s random draws: the run seed on rank 0 (so one process is a
    single-process run), a number derived from ``(seed, rank)`` by NumPy's
    ``SeedSequence`` elsewhere (independent streams, not ``seed + rank``)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def env_world() -> tuple[int, int, int, int] | None:
    """``(rank, world_size, local_rank, local_world_size)`` from torchrun's environment,
    or ``None`` when this process was not started by torchrun.

    Raises:
        ConfigError: the variables are malformed.
    """
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world, local = (int(os.environ.get(k, "0")) for k in ENV_KEYS[:3])
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        values = ", ".join(f"{k}={os.environ.get(k)!r}" for k in ENV_KEYS)
        raise ConfigError(f"torchrun's environment is malformed ({values})") from None
    if not (0 <= rank < world and 0 <= local < local_world):
        raise ConfigError(f"torchrun's environment is inconsistent: rank {rank} of {world}")
    return rank, world, local, local_world


@dataclass
class Distributed:
    """This process's place in a distributed run, and the collectives training needs.

    ``world_size`` 1 is a single process: every collective is then the identity.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _wrapped: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, tests and writes."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    # -- collectives (all ranks call them in the same order) --------------------------
    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar tensor over the ranks."""
        if not self.active:
            return value
        out = value.detach().double().clone()
        _all_reduce(out)
        return out / self.world_size

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of a tensor over the ranks."""
        if not self.active:
            return values
        out = values.detach().clone()
        _all_reduce(out)
        return out

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag``, on every rank (a broadcast)."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)], dtype=torch.int64, device=self._comm_device)
        _call(torch.distributed.broadcast, t, src=0)
        return bool(t.item())

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DistributedDataParallel (one wrapper per module, reused by every
        stage), or ``module`` itself in a single process or with nothing to train.

        Buffers are not broadcast at each forward pass: only rank 0's model is evaluated
        and saved, so BatchNorm statistics of the other ranks do not matter, and a
        forward pass then holds no collective (a divergence diagnosis may rerun one).
        """
        if not self.active or not any(p.requires_grad for p in module.parameters()):
            return module
        key = id(module)
        if key not in self._wrapped:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Newer torch names the setting forward_sync_buffers (and warns about the old).
            sync = (
                "forward_sync_buffers"
                if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                else "broadcast_buffers"
            )
            options: dict[str, Any] = {"device_ids": ids, sync: False}
            self._wrapped[key] = DistributedDataParallel(module, **options)
        return self._wrapped[key]


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A collective; a lost peer becomes one :class:`DistributedError` line."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:
        raise lost_peer(exc) from exc


def _all_reduce(t: torch.Tensor) -> None:
    _call(torch.distributed.all_reduce, t)


def lost_peer(exc: BaseException) -> DistributedError:
    """The error of a rank whose collective failed: most often another rank stopped
    first (its own error is in the launcher's output)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    rank = os.environ.get("RANK", "?")
    return DistributedError(
        f"rank {rank} lost the other processes of the run (another rank probably failed "
        f"first; its error is in the launcher's output): {first[:300]}"
    )


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed collective (a peer that died, a timeout)."""
    backend_error = getattr(torch.distributed, "DistBackendError", ())
    if backend_error and isinstance(exc, backend_error):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "gloo")
    )


def resolve_device(requested: str, local_rank: int, local_world: int) -> torch.device:
    """The device of one rank: ``cuda:LOCAL_RANK`` for ``auto`` or ``cuda`` on a CUDA
    machine, else the CPU.

    Raises:
        ConfigError: a device that cannot be shared this way (``cuda:N``, MPS) or too
            few GPUs for the processes of this node.
    """
    from benchbox.engine.device import resolve_device as resolve_single

    device = resolve_single(requested)
    if device.type == "mps":
        raise ConfigError("a distributed run needs CPU (gloo) or CUDA (nccl), not MPS")
    if device.type == "cuda":
        if requested not in ("auto", "cuda"):
            raise ConfigError(
                f"--device {requested}: in a distributed run each process uses the GPU of its "
                "local rank; use --device cuda (or auto)"
            )
        count = torch.cuda.device_count()
        if local_world > count:
            raise ConfigError(
                f"{local_world} processes on this node but only {count} CUDA device(s): "
                "start at most one process per GPU"
            )
        return torch.device("cuda", local_rank)
    return device


def check_batches(batch_size: int, train_size: int, world_size: int) -> None:
    """Raise unless every step's global batch splits evenly over the ranks."""
    if world_size <= 1:
        return
    step = batch_size if train_size > batch_size else train_size
    if step % world_size:
        what = (
            f"--batch-size {batch_size}"
            if step == batch_size
            else f"the training split ({train_size} images, smaller than --batch-size)"
        )
        raise ConfigError(
            f"{what} does not split evenly over {world_size} processes; the batch size is "
            f"global, so use a multiple of {world_size}"
        )


class ShardedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """The global batches of ``batches``, each cut to this rank's contiguous share.

    Every rank iterates the same ``batches`` (same seed, same generator), so the shares
    of one step are disjoint and together make the single-process batch.
    """

    def __init__(self, batches: Any, rank: int, world_size: int) -> None:
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            share = len(batch) // self.world_size
            yield list(batch[self.rank * share : (self.rank + 1) * share])


def timeout() -> datetime.timedelta:
    """How long a collective waits (``BENCHBOX_DDP_TIMEOUT`` seconds, default 1800)."""
    raw = os.environ.get(TIMEOUT_ENV, "1800")
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if seconds <= 0:
        raise ConfigError(f"{TIMEOUT_ENV} must be > 0 seconds, got {raw}")
    return datetime.timedelta(seconds=seconds)


_joined = False


def joined() -> bool:
    """Whether this process joined a process group (see :func:`start`), even if it left
    it since: after a failed collective, the process must end with ``os._exit``."""
    return _joined


def start(device: torch.device, world: tuple[int, int, int, int]) -> Distributed:
    """Join the process group of torchrun's environment (gloo on CPU, nccl on CUDA)."""
    import torch.distributed as dist

    global _joined
    _joined = True

    rank, world_size, local_rank, _ = world
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(
            backend, timeout=timeout(), device_id=device if device.type == "cuda" else None
        )
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(
            f"rank {rank} of {world_size} could not join the {backend} process group: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from exc
    return Distributed(rank, world_size, local_rank, backend, device)


def stop() -> None:
    """Leave the process group (safe to call when it was never joined)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def describe(d: Distributed | None, batch_size: int) -> dict[str, Any]:
    """What a run's records say about its processes (a single one without ``d``)."""
    world = d.world_size if d is not None else 1
    return {
        "world_size": world,
        "backend": (d.backend or None) if d is not None else None,
        "global_batch_size": batch_size,
        "batch_size_per_rank": batch_size // world,
    }


@contextlib.contextmanager
def peers_checked(d: Distributed | None) -> Iterator[None]:
    """Turn a failed collective of a distributed run (a peer that died, a timeout) into
    one :class:`DistributedError` line (see :func:`lost_peer`)."""
    try:
        yield
    except RuntimeError as exc:
        if d is not None and d.active and is_collective_failure(exc):
            raise lost_peer(exc) from exc
        raise
