"""Sending one JSON document: to a command on its stdin, or to a webhook in a POST.

Shared by the controller's `--hook` (controller/hooks.py) and the topology's
notification targets (dispatch.py). Each send is bounded by its timeout and says in one
`Delivery` whether the other side took it and, in one line, what it said; nothing here
raises for a target that fails.
"""

from __future__ import annotations

import shlex
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    ok: bool
    detail: str  # one line: what the target said or why it failed


def run_command(
    command: str,
    stdin: str,
    env: Mapping[str, str],
    timeout: float,
    *,
    started: Callable[[subprocess.Popen[str]], None] | None = None,
) -> Delivery:
    """Run `command` (split like a shell would, run without one) with `stdin` and exactly
    `env`; ok when it exits 0 within `timeout`, else killed. `started` gets the process
    (the caller may kill it from another thread)."""
    try:
        child = subprocess.Popen(
            shlex.split(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
        )
    except OSError as exc:
        return Delivery(False, f"{command!r} could not run ({exc.strerror})")
    if started is not None:
        started(child)
    try:
        out, err = child.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return Delivery(False, f"{command!r} ran over {timeout:g} s")
    said = " ".join((out + " " + err).split())[:200]
    detail = f"{command!r} exited {child.returncode}" + (f": {said}" if said else "")
    return Delivery(child.returncode == 0, detail)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered, not followed: urllib would send the Authorization header
    on to wherever it points."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_NoRedirect)


def post_json(
    url: str,
    body: bytes,
    timeout: float,
    *,
    headers: Mapping[str, str] | None = None,
    follow_redirects: bool = True,
) -> Delivery:
    """POST `body` (JSON) to `url`; ok on a 2xx answer within `timeout` per socket wait."""
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    opener = urllib.request.urlopen if follow_redirects else _NO_REDIRECTS.open
    try:
        with opener(request, timeout=timeout) as answer:
            return Delivery(True, f"{url} answered {answer.status}")
    except urllib.error.HTTPError as exc:
        return Delivery(False, f"{url} answered {exc.code}")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Delivery(False, f"{url} did not answer ({reason})")
