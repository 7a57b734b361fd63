"""The exit codes, re-exported: they live in the leaf module orchestrator.exitcodes, which
the lab's commands use without importing the CLI."""

from orchestrator.exitcodes import ExitCode

__all__ = ["ExitCode"]
