"""The topology file: models, loading and validation."""

from orchestrator.config.loader import InvalidTopology, config_path, load_topology, validate_text
from orchestrator.config.model import Topology
from orchestrator.config.problems import Problem

__all__ = [
    "InvalidTopology",
    "Problem",
    "Topology",
    "config_path",
    "load_topology",
    "validate_text",
]
