"""A trial that prints `lines` lines as fast as it can, like a chatty training loop."""

import sys

import hydra
from omegaconf import DictConfig

BLOCK = 10_000


@hydra.main(version_base="1.3", config_path=None)
def main(cfg: DictConfig) -> int:
    lines = int(cfg.get("lines", 0))
    for start in range(0, lines, BLOCK):
        sys.stdout.write("".join(f"step {n} loss 0.123456\n" for n in range(start, min(start + BLOCK, lines))))
    return lines


if __name__ == "__main__":
    main()
