"""What every training script shares: the dataset, random windows, several GPUs, resuming, logs."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Dataset:
    """Fitted dances from ``prepare_data fit``: per dance, rows of upper (90), lower (58), features (57)."""

    names: list[str]
    held_out: np.ndarray
    mirrored: np.ndarray  # (dances,) bool: a left-right mirrored copy of a capture
    upper: list[np.ndarray]
    lower: list[np.ndarray]
    features: list[np.ndarray]
    music_features: list[np.ndarray]

    @classmethod
    def load(cls, path: Path) -> Dataset:
        data = np.load(path)
        bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
        music_bounds = np.concatenate([[0], np.cumsum(data["music_lengths"])])

        def split(array: np.ndarray, edges: np.ndarray) -> list[np.ndarray]:
            return [array[edges[i] : edges[i + 1]].astype(np.float32) for i in range(len(edges) - 1)]

        return cls(
            names=[str(n) for n in data["names"]],
            held_out=data["held_out"].astype(bool),
            mirrored=data["mirrored"].astype(bool),
            upper=split(data["upper"], bounds),
            lower=split(data["lower"], bounds),
            features=split(data["features"], bounds),
            music_features=split(data["music_features"], music_bounds),
        )

    def indices(self, held_out: bool, mirrored: bool = True) -> list[int]:
        """The dances of one split; with ``mirrored=False`` without the mirrored copies."""
        return [
            i
            for i in range(len(self.names))
            if bool(self.held_out[i]) == held_out and (mirrored or not self.mirrored[i])
        ]


def sample_windows(
    rng: np.random.Generator, arrays: list[list[np.ndarray]], dances: list[int], length: int, batch: int
) -> list[np.ndarray]:
    """``batch`` random windows of ``length`` rows, the same rows from each list of arrays,
    dances drawn in proportion to their length. Returns one (batch, length, dim) array per list."""
    lengths = np.array([len(arrays[0][i]) for i in dances], dtype=np.float64)
    usable = np.maximum(lengths - length + 1, 0)
    chosen = rng.choice(len(dances), size=batch, p=usable / usable.sum())
    out = [[] for _ in arrays]
    for pick in chosen:
        dance = dances[pick]
        start = int(rng.integers(0, usable[pick]))
        for column, source in enumerate(arrays):
            out[column].append(source[dance][start : start + length])
    return [np.stack(column) for column in out]


@dataclass
class Distributed:
    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module as the training step calls it: under DistributedDataParallel with several processes."""
        if self.world_size == 1:
            return module
        if self.device.type == "cuda":
            return DistributedDataParallel(module, device_ids=[self.device.index])
        return DistributedDataParallel(module)

    def keep_going(self, wanted: bool) -> bool:
        """Whether every process runs another step. Each process checks its own clock; one that
        stopped a step early would leave the others waiting in DDP's all-reduce for ever, so the
        processes stop together as soon as any one wants to."""
        if self.world_size == 1:
            return wanted
        stop = torch.tensor([0 if wanted else 1], device=self.device)
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        return int(stop.item()) == 0

    def finish(self) -> None:
        """Leave the process group (torch warns, and may leak, when a process exits inside one)."""
        if self.world_size > 1:
            dist.destroy_process_group()


def setup_distributed() -> Distributed:
    """One process per GPU under torchrun (RANK/WORLD_SIZE set; NCCL), or per CPU process where
    there is no GPU (gloo: the tests run two that way), else a single process."""
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        local_rank = int(os.environ["LOCAL_RANK"])
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl")
            device = torch.device("cuda", local_rank)
        else:
            dist.init_process_group("gloo")
            device = torch.device("cpu")
        env = Distributed(dist.get_rank(), dist.get_world_size(), device)
    else:
        env = Distributed(0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if env.main:
        print(f"training on {env.world_size} process(es), {env.device.type}", flush=True)
    return env


class Logger:
    """JSON lines in ``path`` and a short line on stdout, from the main process only."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled, self.started = path, enabled, time.perf_counter()
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        record = {"step": step, "seconds": round(time.perf_counter() - self.started, 1), **values}
        with self.path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()), flush=True)


def optimiser_step(
    optimiser: torch.optim.Optimizer, loss: torch.Tensor, parameters, max_grad_norm: float | None = None
) -> None:
    """Backpropagate ``loss`` and step, clipping the gradients' norm first when asked."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimiser.step()


def save_train_state(path: Path, step: int, model: torch.nn.Module, optimiser: torch.optim.Optimizer) -> None:
    """Resume state for the training machine (torch's own format; never shipped)."""
    temporary = path.with_suffix(".tmp")
    torch.save({"step": step, "model": model.state_dict(), "optimiser": optimiser.state_dict()}, temporary)
    os.replace(temporary, path)


def load_train_state(path: Path, model: torch.nn.Module, optimiser: torch.optim.Optimizer) -> int:
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    return int(state["step"])
