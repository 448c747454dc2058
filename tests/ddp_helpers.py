"""A toy task and a DDP worker for the engine tests (importable by spawned processes)."""

from __future__ import annotations

import torch
from torch import nn

from medssl.config import OptimCfg, TrainCfg
from medssl.engine.trainer import Engine


class ToyTask:
    monitor = "score"
    find_unused_parameters = False

    def __init__(self, nan_at: int | None = None, batches: int = 3, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        g = torch.Generator().manual_seed(1)
        self.data = [(torch.randn(5, 4, generator=g), torch.randn(5, 1, generator=g)) for _ in range(batches)]
        self.nan_at, self.calls = nan_at, 0

    def steps_per_epoch(self) -> int:
        return len(self.data)

    def train_loader(self, epoch: int):
        return [{"x": x, "y": y} for x, y in self.data]

    def training_step(self, model, batch):
        self.calls += 1
        mse = ((model(batch["x"]) - batch["y"]) ** 2).mean()
        reg = mse * 0 + (float("nan") if self.nan_at == self.calls else 0.0)
        return {"loss": mse + reg, "mse": mse, "reg": reg}

    def on_step(self, step, max_steps):
        pass

    def after_step(self, progress):
        pass

    def validate(self, model, epoch):
        return {"score": -float(sum(((model(x) - y) ** 2).mean() for x, y in self.data))}


def train_cfg(epochs: int, **kw) -> tuple[TrainCfg, OptimCfg]:
    return TrainCfg(epochs=epochs, device="cpu", progress=False, log_every=1, **kw), OptimCfg(
        name="sgd", lr=0.05, min_lr=0.0
    )


def ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        task = ToyTask(batches=4, seed=rank)  # different initial weights: DDP must broadcast rank 0's
        task.data = task.data[rank::world]
        t, o = train_cfg(2)
        Engine(t, o, out_dir).fit(task)
        torch.save([p.detach().clone() for p in task.model.parameters()], f"{out_dir}/params_rank{rank}.pt")
    finally:
        dist.destroy_process_group()
