"""Where sitectl keeps its state in ZooKeeper, under `<chroot>/<cluster>`.

lock            the operation lease (a kazoo Lock): one operation at a time
election        the controllers' leader election
epoch           its version is the fencing epoch, bumped on every lease acquisition
active-site     the site that serves (plain text)
current         the id of the operation in progress, if any
paused          present while automatic promotion is paused
ticket          the site ticket (JSON, coordination/ticket.py): who may serve, until when
operations/ID   the operation record (JSON); operations/ID/steps/STEP its checkpoints;
                operations/ID/log/s-N the sentences its executor logged, in order
requests/req-N  an operator's request for an operation (JSON, asking/model.py);
                requests/req-N/answer the leading controller's answer to it
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ZkPaths:
    root: str

    @classmethod
    def for_cluster(cls, chroot: str, cluster: str) -> ZkPaths:
        return cls(f"{chroot.rstrip('/')}/{cluster}")

    @property
    def lock(self) -> str:
        return f"{self.root}/lock"

    @property
    def election(self) -> str:
        return f"{self.root}/election"

    @property
    def epoch(self) -> str:
        return f"{self.root}/epoch"

    @property
    def active_site(self) -> str:
        return f"{self.root}/active-site"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def paused(self) -> str:
        return f"{self.root}/paused"

    @property
    def ticket(self) -> str:
        return f"{self.root}/ticket"

    @property
    def operations(self) -> str:
        return f"{self.root}/operations"

    def operation(self, op_id: str) -> str:
        return f"{self.operations}/{op_id}"

    def steps(self, op_id: str) -> str:
        return f"{self.operation(op_id)}/steps"

    def step(self, op_id: str, step_id: str) -> str:
        return f"{self.steps(op_id)}/{encode_step_id(step_id)}"

    def sentences(self, op_id: str) -> str:
        return f"{self.operation(op_id)}/log"

    @property
    def requests(self) -> str:
        return f"{self.root}/requests"

    def request(self, name: str) -> str:
        return f"{self.requests}/{name}"

    def answer(self, name: str) -> str:
        return f"{self.request(name)}/answer"


def encode_step_id(step_id: str) -> str:
    # Step ids contain '/', which ZooKeeper reads as a path separator.
    return step_id.replace("%", "%25").replace("/", "%2F")


def step_file_name(step_id: str, limit: int = 120) -> str:
    """A file or directory name for a step (its artifacts): the encoded id, or for a long
    one its start and a digest of all of it, within what any file system takes."""
    encoded = encode_step_id(step_id)
    if len(encoded.encode()) <= limit:
        return encoded
    digest = hashlib.sha1(step_id.encode(), usedforsecurity=False).hexdigest()[:12]
    return encoded.encode()[: limit - 13].decode(errors="ignore") + "-" + digest


def decode_step_id(node: str) -> str:
    return node.replace("%2F", "/").replace("%25", "%")
