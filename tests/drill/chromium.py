"""Headless Chromium for the report tests: render a page, keep its screenshot, and
collect what the browser complained about while loading it."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1200,2600",
)


@dataclass(frozen=True)
class Shot:
    png: Path
    width: int
    height: int
    colours: int  # distinct byte values in the image data: a blank page has very few
    complaints: list[str]  # console errors and failed loads the page caused


def screenshot(page: Path, png: Path) -> Shot:
    binary = shutil.which("chromium")
    if binary is None:
        # A fail, not a skip: the report's rendering is part of what a drill proves.
        pytest.fail("chromium is not installed: run ./scripts/install (it adds the package)")
    with tempfile.TemporaryDirectory(prefix="drill-chromium-") as profile:
        done = subprocess.run(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    width, height, colours = _png_facts(png)
    return Shot(png, width, height, colours, _complaints(done.stderr))


def _complaints(stderr: str) -> list[str]:
    # Chromium's own noise without a desktop session (D-Bus, GPU) is not about the page,
    # nor are console lines of its own UI pages (source: chrome://…, e.g. "Slow network
    # is detected" from its compose box on a loaded machine).
    return [
        line
        for line in stderr.splitlines()
        if ("CONSOLE" in line or "net::ERR_" in line or "Uncaught" in line)
        and "source: chrome://" not in line
    ]


def _png_facts(path: Path) -> tuple[int, int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))
