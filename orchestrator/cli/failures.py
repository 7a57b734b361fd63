"""How a command that reads or changes ZooKeeper's records says it failed: one line, and
the exit code a script can act on.

The same mapping as `_engine_errors` in orchestrator/cli/operations.py, without importing
the engine (`sitectl status` and `history` only read); tests/unit/test_lazy_cli.py checks
the two agree, case by case, until operations.py uses this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.output import fail
from orchestrator.engine.session import OperationPending
from orchestrator.errors import ConfigError, LeaseLost, Locked, SitectlError, Unavailable
from orchestrator.plan import PlanRefused


@contextmanager
def engine_errors() -> Iterator[None]:
    """One line per failure, with the exit code a script can act on."""
    try:
        yield
    except PlanRefused as exc:
        fail(f"refused: {exc}", ExitCode.GATE_REFUSED if exc.gate else ExitCode.BAD_INPUT)
    except (Locked, OperationPending) as exc:
        fail(f"busy: {exc}", ExitCode.LOCKED)
    except ConfigError as exc:
        fail(f"refused: {exc}", ExitCode.BAD_INPUT)
    except LeaseLost as exc:
        fail(
            f"stopped: {exc}. The operation stays recorded in ZooKeeper; the next leader or "
            "`sitectl resume` continues it.",
            ExitCode.OPERATION_FAILED,
        )
    except Unavailable as exc:
        fail(f"unavailable: {exc}", ExitCode.OPERATION_FAILED)
    except SitectlError as exc:
        fail(f"failed: {exc}", ExitCode.OPERATION_FAILED)
