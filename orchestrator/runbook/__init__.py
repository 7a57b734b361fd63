"""Runbooks: a plan rendered for a person to follow by hand."""

from orchestrator.runbook.render import render_runbook

__all__ = ["render_runbook"]
