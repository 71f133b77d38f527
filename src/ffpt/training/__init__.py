"""Training of MLIPs with Lightning: stages ``scratch``, ``pretrain`` and ``finetune``."""

from ffpt.training.config import ConfigError, TrainConfig, parse_config
from ffpt.training.stages import TrainResult, train

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "parse_config", "train"]
