"""ZooKeeper: a 3-node ensemble, one node per site (dc1, dc2, witness).

The JVM gets small-heap flags: without them each node's max heap defaults to a quarter
of the machine's memory and three of them blow the lab's 1.5 GB budget.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from orchestrator.coordination.client import digest_id
from orchestrator.lab import layout
from orchestrator.lab.credentials import ensure_password, ensure_server_cert
from orchestrator.lab.state import Component, LabState
from orchestrator.lab.templates import render

JAVA_DIR = Path("/usr/share/java")
# The secure client port runs on Netty (lab notes): its jars, by their unversioned names.
NETTY_JARS = (
    "netty-buffer",
    "netty-codec",
    "netty-common",
    "netty-handler",
    "netty-resolver",
    "netty-transport",
    "netty-transport-native-unix-common",
)
CLASSPATH = ":".join(
    str(JAVA_DIR / f"{name}.jar") for name in ("zookeeper", "slf4j-simple", *NETTY_JARS)
)
JVM_FLAGS = [
    "-Xms16m",
    "-Xmx64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:ReservedCodeCacheSize=24m",
    "-XX:MaxMetaspaceSize=64m",
    "-Xss512k",
    "-XX:CICompilerCount=1",
    "-XX:-UsePerfData",
    # A node cut off keeps trying its peers, backing off up to maxNotificationInterval
    # (60 s by default): after a heal it could stay out of the ensemble for a minute. The
    # lab's cuts last seconds, so it retries every 2 s at most. A connection to a peer
    # behind a cut (the router drops it) waits cnxTimeout (5 s by default) before an
    # election moves on; every peer here is a hop away, so 1 s is ample, and an
    # election after a cut costs the controllers' renewals seconds less.
    "-Dzookeeper.fastleader.maxNotificationInterval=2000",
    "-Dzookeeper.cnxTimeout=1000",
]


def connect_string() -> str:
    return ",".join(f"{layout.service_ip(s)}:{layout.ZK_CLIENT_PORT}" for s in layout.SITES)


def ports(site: str) -> list[tuple[str, int]]:
    ip = layout.service_ip(site)
    return [
        (ip, layout.ZK_CLIENT_PORT),
        (ip, layout.ZK_SECURE_PORT),
        (ip, layout.ZK_PEER_PORT),
        (ip, layout.ZK_ELECTION_PORT),
    ]


def digest_file(state: LabState) -> Path:
    """sitectl's ZooKeeper identity, "user:password": its znodes carry a digest ACL for
    this identity only, so nothing else on the ensemble can read or move them."""
    return state.secrets / "zookeeper.digest"


def controller_identity_file(state: LabState, site: str) -> Path:
    """`site`'s controller identity, "ctl-SITE:password": only it may write that site's
    vantage report (controller/zkstate.py)."""
    return state.secrets / f"controller-{site}.digest"


def controller_ids(state: LabState) -> dict[str, str]:
    """Each site's controller identity as ZooKeeper names it (made on first use)."""
    return {
        site: digest_id(ensure_password(controller_identity_file(state, site), f"ctl-{site}:"))
        for site in layout.SITES
    }


def ca_cert(state: LabState) -> Path:
    return state.pki / "ca.crt"


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    ensure_password(digest_file(state), prefix="sitectl:")
    peers = [{"myid": layout.zk_myid(s), "ip": layout.service_ip(s)} for s in layout.SITES]
    comps = []
    for site in layout.SITES:
        home = state.site_dir(site, "zookeeper")
        data = home / "data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "myid").write_text(f"{layout.zk_myid(site)}\n")
        cert, key = ensure_server_cert(
            state.pki, f"{site}-zookeeper", [layout.service_ip(site)], programs["openssl"]
        )
        # ZooKeeper's PEM key store is one file: the private key, then the certificate.
        keystore = home / "keystore.pem"
        keystore.touch(mode=0o600)
        keystore.write_text(key.read_text() + cert.read_text())
        cfg = render(
            "zoo.cfg.j2",
            home / "zoo.cfg",
            site=site,
            myid=layout.zk_myid(site),
            data_dir=data,
            client_ip=layout.service_ip(site),
            client_port=layout.ZK_CLIENT_PORT,
            secure_port=layout.ZK_SECURE_PORT,
            keystore=keystore,
            truststore=ca_cert(state),
            peers=peers,
            peer_port=layout.ZK_PEER_PORT,
            election_port=layout.ZK_ELECTION_PORT,
        )
        comps.append(
            Component(
                name=f"{site}-zookeeper",
                site=site,
                kind="zookeeper",
                address=f"{layout.service_ip(site)}:{layout.ZK_CLIENT_PORT}",
                argv=[
                    programs["java"],
                    *JVM_FLAGS,
                    "-cp",
                    CLASSPATH,
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                    str(cfg),
                ],
                cwd=str(home),
                log=str(home / "zookeeper.log"),
            )
        )
    return comps


def four_letter(ip: str, port: int, word: str, timeout: float = 1.0) -> str:
    """Send a ZooKeeper four-letter word and return the whole answer."""
    with socket.create_connection((ip, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(word.encode())
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def ready(comp: Component) -> bool:
    """The node serves clients as a member of a quorum (leader or follower), and its
    secure port, which sitectl's sessions use, completes a TLS handshake."""
    ip, port = comp.address.rsplit(":", 1)
    answer = four_letter(ip, int(port), "srvr")
    return ("Mode: leader" in answer or "Mode: follower" in answer) and _handshakes(ip)


def _handshakes(ip: str, timeout: float = 5.0) -> bool:
    """Whether the node's secure port completes a TLS handshake. A JVM's first handshake
    loads its crypto classes, seconds of CPU on a busy machine: done here, not inside
    the 2 s that an operation's first ZooKeeper probe allows. Only a warm-up, so the
    certificate is not checked (the sessions that follow check it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((ip, layout.ZK_SECURE_PORT), timeout=timeout) as raw,
            context.wrap_socket(raw),
        ):
            return True
    except OSError:  # ssl.SSLError too: not serving TLS yet
        return False
