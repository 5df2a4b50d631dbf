"""Multi-process training with DistributedDataParallel (DDP), launched by ``torchrun``.

    torchrun --nproc_per_node 8 -m inpaintssl train --preset m1 --data cache/ --out runs/m1
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 -m inpaintssl train ...

``train.train`` calls :func:`setup` first: with ``WORLD_SIZE`` > 1 in the environment (torchrun sets it)
it joins the process group (NCCL on CUDA, gloo on CPU) and pins the process to ``cuda:LOCAL_RANK``.
With one process nothing here is used and training is exactly the single-process path.

How a step is split (``train.batch_size`` stays the GLOBAL batch B, which must divide by the world W):

* rank r takes the contiguous slice ``[r B/W, (r+1) B/W)`` of the step's stream positions (and of the
  step's masks), so the W shards put together are exactly the single-process batch;
* batch norm is synchronised (:func:`convert_sync_bn`): the batch statistics are those of the global
  batch, so the forward pass equals the single-process one up to float summation order. Per-rank BN
  would normalise each shard by its own statistics and the run would follow a different trajectory;
* DDP averages the gradients, and every loss term is a batch mean over equal shards, so the averaged
  gradient is the gradient of the global batch loss (``loss.mse_norm=region`` with random holes is the
  one exception: a mean of per-shard ratios is not the global ratio);
* only rank 0 writes (config, metrics, samples, checkpoints); every rank reads ``latest.pt`` on
  resume, so the run folder must be on a filesystem all nodes see;
* the stop flag (Ctrl-C / SIGTERM on any rank) and the logged losses are summed across ranks in one
  ``all_reduce`` at the steps where the loop checks them, so all ranks stop at the same step.
"""

from __future__ import annotations

import datetime
import gc
import inspect
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from ..errors import InpaintsslError


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False          # True when setup() created the process group (and must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str) -> tuple[DistInfo, str]:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1; returns the info and the device to use.

    ``device_name`` is ``train.device``; with several processes ``auto``/``cuda`` become ``cuda:LOCAL_RANK``."""
    if dist.is_available() and dist.is_initialized():            # a caller (e.g. a test) made the group
        rank, world = dist.get_rank(), dist.get_world_size()
        info = DistInfo(rank, world, int(os.environ.get("LOCAL_RANK", rank)), owns_group=False)
    else:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return DistInfo(), device_name
        if not dist.is_available():
            raise InpaintsslError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
        info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")), owns_group=True)
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise InpaintsslError(f"train.device={device_name!r} but CUDA is not available on rank {info.rank}")
        device_name = f"cuda:{info.local_rank % torch.cuda.device_count()}"
        torch.cuda.set_device(torch.device(device_name))
    else:
        device_name = "cpu"
    if info.owns_group:
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30),
                                device_id=torch.device(device_name) if use_cuda else None)
    return info, device_name


def teardown(info: DistInfo) -> None:
    """Destroy the group this process made. Objects that still hold it (a DDP reducer kept alive by a
    reference cycle) are collected first: left to interpreter shutdown, gloo's worker threads were seen
    to abort a rank at exit (SIGABRT, "terminate called without an active exception")."""
    if info.owns_group and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


def exit_worker(code: int) -> None:
    """End a torchrun worker process now, skipping interpreter shutdown (see :func:`teardown`): every
    file is written and closed by then, and the streams are flushed here."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def on_main(fn, info: DistInfo) -> None:
    """Run ``fn`` on rank 0 only; an InpaintsslError it raises is raised on every rank (no rank hangs)."""
    message = None
    if info.is_main:
        try:
            fn()
        except InpaintsslError as e:
            message = str(e)
            if not info.enabled:
                raise
    if info.enabled:
        box = [message]
        dist.broadcast_object_list(box, src=0)
        if box[0] is not None:
            raise InpaintsslError(box[0])


def shard(batch_size: int, info: DistInfo) -> slice:
    """This rank's contiguous slice of a global batch of ``batch_size`` samples."""
    if batch_size % info.world:
        raise InpaintsslError(f"train.batch_size={batch_size} does not divide by the {info.world} processes; "
                              f"use a multiple of {info.world} (it is the global batch)")
    per = batch_size // info.world
    return slice(info.rank * per, (info.rank + 1) * per)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum is the sum of the gradients (also all-reduced)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class DistBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch across all ranks (any device).

    Exact two-pass statistics: one all-reduce for the per-channel sum (-> global mean), one for the sum
    of squared deviations (-> global biased variance). Written with differentiable all-reduces so
    autograd gives the synchronised backward. Used on CPU (torch's SyncBatchNorm is GPU-only); outside
    training or without a process group it is a plain BatchNorm2d (same state_dict keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dtype, x = x.dtype, x.float()                   # statistics in fp32 also under bf16 autocast
        c = x.shape[1]
        n_local = torch.tensor([x.numel() // c], dtype=x.dtype, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([x.sum(dim=(0, 2, 3)), n_local]))     # (C + 1,)
        n = sums[-1]
        mean = sums[:c] / n                                                          # (C,)
        centred = x - mean.view(1, c, 1, 1)
        var = _AllReduceSum.apply(centred.pow(2).sum(dim=(0, 2, 3))) / n            # biased, (C,)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), m)
        y = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y.to(dtype)


def convert_sync_bn(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm2d by a synchronised one: torch's SyncBatchNorm on CUDA, ours elsewhere.

    The parameters and buffers are moved over (not copied), so optimisers built before stay valid."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if type(module) is nn.BatchNorm2d:
        new = DistBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_bn(child, device))
    return module


def wrap_models(models: dict[str, nn.Module], device: torch.device, info: DistInfo
                ) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """(models with synchronised BN, DDP wrappers used for the forward passes of training).

    The unwrapped models keep plain state_dict keys (no ``module.`` prefix) for checkpoints and samples."""
    models = {k: convert_sync_bn(m, device) for k, m in models.items()}
    ids = [device.index] if device.type == "cuda" else None
    # buffers need no broadcast at each forward: synchronised BN keeps the running statistics equal on
    # every rank (torch >= 2.13 spells this forward_sync_buffers=False, older versions broadcast_buffers)
    params = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    runners = {k: nn.parallel.DistributedDataParallel(m, device_ids=ids, **no_sync) for k, m in models.items()}
    return models, runners


def reduce_logs(logs: dict[str, torch.Tensor], stop: bool, info: DistInfo) -> tuple[dict[str, torch.Tensor], bool]:
    """Average the scalar logs over ranks and OR the stop flags, in one all-reduce (all ranks must call)."""
    if not info.enabled:
        return logs, stop
    keys = sorted(logs)
    flat = torch.stack([logs[k].detach().float().reshape(()) for k in keys]
                       + [torch.tensor(float(stop), device=logs[keys[0]].device)])
    dist.all_reduce(flat)
    out = {k: flat[i] / info.world for i, k in enumerate(keys)}
    return out, bool(flat[-1].item() > 0)


def gather_strings(items: list[str], info: DistInfo) -> list[str]:
    """The union (sorted) of every rank's list of strings, on all ranks. A collective: it returns on no
    rank before every rank has called it, so it also orders what each rank did before it."""
    if not info.enabled:
        return sorted(set(items))
    lists: list = [None] * info.world
    dist.all_gather_object(lists, list(items))
    return sorted({s for part in lists for s in part})

