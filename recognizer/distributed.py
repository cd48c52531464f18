"""Several GPUs of one machine through torchrun + DistributedDataParallel.

``torchrun --nproc_per_node=N`` starts N copies of a training entry point and sets
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; ``setup()`` joins them into one process
group (NCCL on GPUs, gloo on CPU, which is how the tests run it) and says which device
this rank trains on. Every rank computes gradients on its own data; DDP averages them
before each optimizer step, so all ranks hold the same weights. Rank 0 alone evaluates
and writes artifacts.

``relaunch_argv`` is how an entry point started plainly on a machine with more than one
GPU re-starts itself under torchrun (``--gpus`` picks the count; 1 keeps one process).
"""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto") -> Dist:
    """Join the torchrun process group (when there is one) and pick this rank's device."""
    from recognizer.train import pick_device

    if not under_torchrun():
        return Dist(device=pick_device(device))
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if pick_device(device).type == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """The DDP wrapper on several ranks, the model itself on one."""
    if not d.active:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def from_main(value: float, d: Dist) -> float:
    """Rank 0's ``value`` on every rank (clock-driven schedules and stop decisions agree)."""
    if not d.active:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=d.device)
    dist.broadcast(t, src=0)
    return float(t.item())


def params_sha(model: torch.nn.Module) -> str:
    """Hash of the trainable weights: the ranks of one DDP run hold the same (BatchNorm running
    statistics are buffers, updated by each rank's own last batch; rank 0's are the ones saved)."""
    h = hashlib.sha256()
    for k, v in sorted(unwrap(model).named_parameters()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def teardown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def relaunch_argv(module: str, args: list[str], gpus: int | None) -> list[str] | None:
    """The torchrun command line that re-runs ``python -m module args`` on every GPU, or None.

    None when already under torchrun, when fewer than two GPUs are asked for or present.
    """
    if under_torchrun():
        return None
    n = torch.cuda.device_count() if gpus is None else gpus
    if n < 2:
        return None
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
            "-m", module, *args]
