"""How commands speak, re-exported: it lives in the leaf module orchestrator.output, which
the lab's commands use without importing the CLI."""

from orchestrator.output import console, emit_json, err_console, fail

__all__ = ["console", "emit_json", "err_console", "fail"]
