"""Config: yacs defaults, yml layering with ``_BASE_``, command-line overrides."""

from yacs.config import CfgNode

from .defaults import get_cfg_defaults
from .loader import ConfigError, find_config, load_config, merge_file, merge_opts, save_config

__all__ = [
    "CfgNode",
    "ConfigError",
    "find_config",
    "get_cfg_defaults",
    "load_config",
    "merge_file",
    "merge_opts",
    "save_config",
]
