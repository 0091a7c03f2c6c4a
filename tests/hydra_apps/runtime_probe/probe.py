"""Prints what a job sees of its runtime, so the same sweep can be compared across launchers.

Paths are printed as they are; the comparing test writes the sweep dir as `<sweep>` and the
launch dir as `<app>`, so `<sweep>/0` reads as relative to the sweep dir."""
import os
from pathlib import Path

from omegaconf import DictConfig

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def probe(cfg: DictConfig) -> int:
    hc = HydraConfig.get()
    print(f"mode: {hc.mode}")
    print(f"hydra.job.num: {hc.job.num}")
    print(f"hydra.job.id: {hc.job.id}")
    print(f"hydra.job.name: {hc.job.name}")
    print(f"hydra.sweep.dir: {hc.sweep.dir}")
    print(f"output_dir: {hc.runtime.output_dir}")
    print(f"cwd: {os.getcwd()}")
    print(f"__file__ is absolute: {os.path.isabs(__file__)}")
    try:
        print(f"beside.txt: {Path(__file__).with_name('beside.txt').read_text().strip()}")
    except OSError as e:  # reported, not raised, so the lines after it still show
        print(f"beside.txt: cannot be read ({type(e).__name__})")
    print(f"x: {cfg.x}")
    return int(cfg.x)


if __name__ == "__main__":
    probe()
