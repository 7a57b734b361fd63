"""The lab's credentials: a CA and server certificates, TSIG keys, passwords.

Made once by `lab up` and kept across restarts (regenerating them on a second `up`
would break clients holding the old ones). Every secret file is mode 0600 in a 0700
directory; files a server must read as its own user are handed over explicitly.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = "3650"


def _private_file(path: Path, content: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


def ensure_password(path: Path, prefix: str = "") -> str:
    """The password stored at `path`, made (`prefix` + random, URL-safe) if absent."""
    if not path.exists():
        _private_file(path, prefix + secrets.token_urlsafe(18) + "\n")
    return path.read_text().strip()


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str  # as BIND writes it, e.g. "hmac-sha256"
    secret: str  # base64
    path: Path

    def keyring(self) -> dict[str, str]:
        """For dns.tsigkeyring.from_text."""
        return {self.name: self.secret}


_KEY_RE = re.compile(r'key\s+"([^"]+)"\s*\{\s*algorithm\s+([\w-]+);\s*secret\s+"([^"]+)";', re.S)


def read_tsig_key(path: Path) -> TsigKey:
    """Parse a key file written by tsig-keygen (the format named also includes)."""
    match = _KEY_RE.search(path.read_text())
    if not match:
        raise ValueError(f"{path}: not a BIND key file")
    name, algorithm, secret = match.groups()
    return TsigKey(name, algorithm, secret, path)


def ensure_tsig_key(path: Path, name: str, tsig_keygen: str) -> TsigKey:
    if not path.exists():
        out = subprocess.run(
            [tsig_keygen, "-a", "hmac-sha256", name], capture_output=True, text=True, check=True
        ).stdout
        _private_file(path, out)
    return read_tsig_key(path)


def ensure_ca(pki: Path, openssl: str) -> Path:
    """A self-signed lab CA (EC P-256); returns the certificate path."""
    cert, key = pki / "ca.crt", pki / "ca.key"
    if cert.exists() and key.exists():
        return cert
    pki.mkdir(mode=0o700, parents=True, exist_ok=True)
    _private_file(key, "")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            CA_DAYS,
            "-subj",
            "/O=sitectl lab/CN=sitectl lab CA",
        ],
        check=True,
        capture_output=True,
    )
    return cert


def ensure_server_cert(pki: Path, name: str, ips: list[str], openssl: str) -> tuple[Path, Path]:
    """A server certificate for `ips` signed by the lab CA; returns (cert, key) paths."""
    cert, key, csr = pki / f"{name}.crt", pki / f"{name}.key", pki / f"{name}.csr"
    if cert.exists() and key.exists():
        return cert, key
    _private_file(key, "")
    san = ",".join(f"IP:{ip}" for ip in ips)
    subprocess.run(
        [
            openssl,
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            f"/O=sitectl lab/CN={name}",
        ],
        check=True,
        capture_output=True,
    )
    extensions = pki / f"{name}.ext"
    extensions.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    subprocess.run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(pki / "ca.crt"),
            "-CAkey",
            str(pki / "ca.key"),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            CA_DAYS,
            "-extfile",
            str(extensions),
        ],
        check=True,
        capture_output=True,
    )
    csr.unlink()
    extensions.unlink()
    return cert, key
