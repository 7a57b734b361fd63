"""`python -m orchestrator.lab …` runs the lab commands without the main CLI."""

from orchestrator.lab.cli import lab_app

lab_app(prog_name="sitectl lab")
