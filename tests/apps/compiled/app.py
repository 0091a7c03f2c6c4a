"""Returns 2 * x. Importing it writes the file IMPORT_SENTINEL names, when set: a test
tells from it whether a process imported the app."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

if os.environ.get("IMPORT_SENTINEL"):
    Path(os.environ["IMPORT_SENTINEL"]).write_text(str(os.getpid()))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return 2.0 * float(cfg.x)


if __name__ == "__main__":
    main()
