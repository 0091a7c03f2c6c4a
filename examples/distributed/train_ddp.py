"""A multi-node trial: torch.distributed (gloo) across every replica of the trial.

Each replica reads the rendezvous settings Vertex gives a CustomJob (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT); the local runner gives the same, so this runs unchanged on a
laptop (`hydra.launcher.mode=local`) and on Vertex AI. The replicas train one linear model
with DistributedDataParallel, each on its own shard, and the chief returns the loss.
"""

import logging

import hydra
import torch
import torch.distributed as dist
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def shard(rank: int, world: int, n: int, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g) * 2 - 1
    y = 3 * x + 1 + 0.1 * torch.randn(n, 1, generator=g)
    return x[rank::world], y[rank::world]


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    dist.init_process_group("gloo", init_method="env://")  # RANK, WORLD_SIZE, MASTER_ADDR/PORT
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(cfg.seed)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(1, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    x, y = shard(rank, world, 1024, cfg.seed)
    for _ in range(cfg.steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()  # gradients are averaged across all replicas here
        optimizer.step()
    total = loss.detach().clone()
    dist.all_reduce(total)
    mean_loss = float(total) / world
    log.info(f"rank {rank}/{world}: mean loss {mean_loss:.5f}")
    dist.destroy_process_group()
    return mean_loss


if __name__ == "__main__":
    main()
