"""Training of MLIPs with Lightning: stages ``scratch``, ``pretrain`` and ``finetune``."""

from ffpt.config import ConfigError, parse_config
from ffpt.training.config import TrainConfig
from ffpt.training.stages import TrainResult, train

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "parse_config", "train"]
