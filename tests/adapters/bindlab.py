"""A private BIND primary + secondary on 127.0.10.1/.2 for the DNS adapter's tests.

Used by tests/adapters (module-scoped fixture) and bench/dns_updates.py. Each `named`
runs in the foreground with its own directory, pid and session-key files and no
control channel, so it never meets the lab's servers on 127.0.1-3.x. The loopback
aliases are added here and removed on stop; a lock file serialises concurrent runs,
which would otherwise fight over the same addresses.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from orchestrator.config.model import DnsServer

PRIMARY = "127.0.10.1"
SECONDARY = "127.0.10.2"
BLACKHOLE = "127.0.10.3"
PORT = 53
DDNS_KEY = "sitectl-ddns"
XFER_KEY = "sitectl-xfer"
READONLY_KEY = "sitectl-readonly"  # known to the servers, granted nothing
LOCK = Path("/run/lock/sitectl-dns-adapter-tests.lock")


def tsig_keygen(path: Path, name: str, algorithm: str = "hmac-sha256") -> Path:
    out = subprocess.run(
        ["tsig-keygen", "-a", algorithm, name], check=True, capture_output=True, text=True
    ).stdout
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(out)
    return path


def zone_text(zone: str, records: Mapping[str, str]) -> str:
    lines = [
        "$TTL 60",
        f"@ IN SOA ns1.{zone} hostmaster.{zone} ( 1 60 30 86400 60 )",
        f"  IN NS ns1.{zone}",
        f"  IN NS ns2.{zone}",
        f"ns1 IN A {PRIMARY}",
        f"ns2 IN A {SECONDARY}",
    ]
    lines += [f"{name} IN A {value}" for name, value in records.items()]
    return "\n".join(lines) + "\n"


# A secondary starts refreshes through a rate limiter; at BIND's default of 20/s its
# tick is 500 ms, so a NOTIFY for a second zone that arrives during the first zone's
# transfer waits half a second. Operators tune serial-query-rate the same way.
SERIAL_QUERY_RATE = 1000


def _options(home: Path, ip: str, serial_query_rate: int | None) -> str:
    rate = "" if serial_query_rate is None else f"    serial-query-rate {serial_query_rate};\n"
    return f"""options {{
    directory "{home}";
    pid-file "{home}/named.pid";
    session-keyfile "{home}/session.key";
    managed-keys-directory "{home}";
    listen-on port {PORT} {{ {ip}; }};
    listen-on-v6 {{ none; }};
    notify-source {ip};
    transfer-source {ip};
    recursion no;
    dnssec-validation no;
    notify-delay 0;
    notify-rate 1000;
    max-ixfr-ratio unlimited;
{rate}    // 1,000 test records are updated in a few messages: keep the journal uncompacted.
    max-journal-size unlimited;
}};
controls {{ }};
"""


@dataclass
class BindPair:
    """Primary + secondary serving `zones`; `start()`/`stop()` or `running()`."""

    home: Path
    zones: Mapping[str, Mapping[str, str]]  # zone → {relative name: IPv4}
    serial_query_rate: int | None = SERIAL_QUERY_RATE  # None: BIND's default (20)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    added_addresses: list[str] = field(default_factory=list)
    stopped: list[subprocess.Popen[bytes]] = field(default_factory=list)
    leftover: list[str] = field(default_factory=list)  # aliases still there after stop
    _lock: int | None = None

    @property
    def ddns_key_file(self) -> Path:
        return self.home / "keys" / f"{DDNS_KEY}.key"

    @property
    def readonly_key_file(self) -> Path:
        return self.home / "keys" / f"{READONLY_KEY}.key"

    @property
    def primary(self) -> DnsServer:
        return DnsServer(address=PRIMARY, port=PORT)

    @property
    def secondary(self) -> DnsServer:
        return DnsServer(address=SECONDARY, port=PORT)

    @property
    def servers(self) -> tuple[DnsServer, DnsServer]:
        return (self.primary, self.secondary)

    @classmethod
    @contextlib.contextmanager
    def running(
        cls,
        home: Path,
        zones: Mapping[str, Mapping[str, str]],
        serial_query_rate: int | None = SERIAL_QUERY_RATE,
    ) -> Iterator[BindPair]:
        pair = cls(home, zones, serial_query_rate)
        try:
            pair.start()
            yield pair
        finally:
            pair.stop()

    def start(self) -> None:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # wait for another run to finish
        for ip in (PRIMARY, SECONDARY):
            self._add_address(ip)
        keys = self.home / "keys"
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        tsig_keygen(self.ddns_key_file, DDNS_KEY)
        tsig_keygen(keys / f"{XFER_KEY}.key", XFER_KEY)
        tsig_keygen(self.readonly_key_file, READONLY_KEY)
        self._launch("primary", PRIMARY, self._primary_zones())
        self._launch("secondary", SECONDARY, self._secondary_zones())
        self._wait_ready()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.stopped.extend(self.procs)
        self.procs.clear()
        for ip in self.added_addresses:
            subprocess.run(
                ["ip", "addr", "del", f"{ip}/32", "dev", "lo"], check=False, capture_output=True
            )
        self.added_addresses.clear()
        # Checked before the lock is released: afterwards another run may add them again.
        shown = subprocess.run(
            ["ip", "-o", "addr", "show", "dev", "lo"], check=True, capture_output=True, text=True
        ).stdout
        self.leftover = [ip for ip in (PRIMARY, SECONDARY) if f" {ip}/" in shown]
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None

    def log(self, which: str) -> str:
        path = self.home / which / "named.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- internals -----------------------------------------------------------------------

    def _add_address(self, ip: str) -> None:
        shown = subprocess.run(
            ["ip", "-o", "addr", "show", "dev", "lo"], check=True, capture_output=True, text=True
        ).stdout
        if f" {ip}/" not in shown:
            subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True)
        # Removed on stop even if a crashed earlier run left it: it is ours either way.
        self.added_addresses.append(ip)

    def _includes(self) -> str:
        names = (DDNS_KEY, XFER_KEY, READONLY_KEY)
        return "".join(f'include "{self.home / "keys" / k}.key";\n' for k in names)

    def _primary_zones(self) -> str:
        home = self.home / "primary"
        home.mkdir(parents=True, exist_ok=True)
        text = ""
        for zone, records in self.zones.items():
            (home / f"{zone}db").write_text(zone_text(zone, records))
            text += f"""zone "{zone}" {{
    type primary;
    file "{zone}db";
    update-policy {{ grant {DDNS_KEY} zonesub ANY; }};
    allow-transfer {{ key {XFER_KEY}; }};
    notify explicit;
    also-notify {{ {SECONDARY} port {PORT} key {XFER_KEY}; }};
}};
"""
        return text

    def _secondary_zones(self) -> str:
        text = ""
        for zone in self.zones:
            text += f"""zone "{zone}" {{
    type secondary;
    file "{zone}secondary.db";
    primaries {{ {PRIMARY} port {PORT} key {XFER_KEY}; }};
    allow-notify {{ key {XFER_KEY}; }};
}};
"""
        return text

    def _launch(self, which: str, ip: str, zones: str) -> None:
        home = self.home / which
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "named.conf"
        conf.write_text(_options(home, ip, self.serial_query_rate) + self._includes() + zones)
        log = open(home / "named.log", "wb")  # noqa: SIM115 - named holds it while it runs
        with log:
            # -g: foreground, logs to stderr; -n 1: one worker is plenty for tests.
            self.procs.append(
                subprocess.Popen(
                    ["named", "-g", "-n", "1", "-c", str(conf)],
                    cwd=home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"named exited ({proc.returncode}):\n"
                        f"{self.log('primary')}\n{self.log('secondary')}"
                    )
            if all(self._serves(ip, zone) for ip in (PRIMARY, SECONDARY) for zone in self.zones):
                return
            time.sleep(0.05)
        raise RuntimeError(f"named not ready in {timeout}s:\n{self.log('secondary')}")

    @staticmethod
    def _serves(ip: str, zone: str) -> bool:
        query = dns.message.make_query(zone, dns.rdatatype.SOA)
        try:
            answer = dns.query.udp(query, ip, port=PORT, timeout=0.5)
        except Exception:
            return False
        return answer.rcode() == 0 and bool(answer.flags & dns.flags.AA) and bool(answer.answer)


def scratch_dir() -> Path:
    """A private directory for a run outside pytest (the bench); caller removes it."""
    return Path(tempfile.mkdtemp(prefix="sitectl-dns-"))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
