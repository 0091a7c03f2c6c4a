"""Dumps the composed task config, so two ways of launching a job can be compared."""

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    dump = {
        "raw": OmegaConf.to_container(cfg, resolve=False),
        "resolved": OmegaConf.to_container(cfg, resolve=True),
        "task_overrides": list(hc.overrides.task),
        "choices": dict(hc.runtime.choices),
    }
    Path(hc.runtime.output_dir, "cfg.json").write_text(json.dumps(dump, indent=2, sort_keys=True, ensure_ascii=False))
    return float(cfg.lr)


if __name__ == "__main__":
    main()
