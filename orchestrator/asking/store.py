"""Requests, answers and an operation's logged sentences in ZooKeeper.

None of these writes is fenced by the lease: a request is an operator's wish (like an
abort), an answer is the word of the controller that took it, and the sentences are a
running commentary. What they start is fenced: the operation takes the lease itself.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError, NotEmptyError

from orchestrator.asking.model import AnswerState, OperationRequest, RequestAnswer
from orchestrator.coordination.client import translated
from orchestrator.coordination.paths import ZkPaths

REQUEST_PREFIX = "req-"
SENTENCE_PREFIX = "s-"


@dataclass(frozen=True)
class Pending:
    """A request nobody has answered yet."""

    name: str
    request: OperationRequest | None  # None: not a request sitectl can read
    created: float  # UNIX time, ZooKeeper's clock (the node's ctime)


class RequestStore:
    def __init__(self, client: KazooClient, paths: ZkPaths) -> None:
        self._client = client
        self.paths = paths

    # The operator's side

    def submit(self, request: OperationRequest) -> str:
        """Write the request; its name (req-NNNNNNNNNN) orders it among the others."""
        with translated("submitting the request"):
            path = self._client.create(
                f"{self.paths.requests}/{REQUEST_PREFIX}",
                request.to_json(),
                sequence=True,
                makepath=True,
            )
        return str(path).rsplit("/", 1)[1]

    def withdraw(self, name: str) -> bool:
        """Take back an unanswered request; False when a controller has claimed it
        meanwhile (the claim is a child node, so the delete cannot remove it)."""
        with translated(f"withdrawing request {name}"):
            try:
                self._client.delete(self.paths.request(name))
            except NotEmptyError:
                return False
            except NoNodeError:
                return True
        return True

    def answer(self, name: str) -> tuple[RequestAnswer, int] | None:
        with translated(f"reading the answer to {name}"):
            try:
                raw, stat = self._client.get(self.paths.answer(name))
            except NoNodeError:
                return None
        return RequestAnswer.from_json(raw), stat.version

    # The controller's side

    def pending(self) -> list[Pending]:
        """Unanswered requests, oldest first."""
        found = []
        with translated("listing the requests"):
            try:
                names = sorted(self._client.get_children(self.paths.requests))
            except NoNodeError:
                return []
            for name in names:
                try:
                    raw, stat = self._client.get(self.paths.request(name))
                    if self._client.exists(self.paths.answer(name)) is not None:
                        continue
                except NoNodeError:
                    continue  # withdrawn between the listing and the read
                found.append(Pending(name, _request_or_none(raw), stat.ctime / 1000))
        return found

    def claim(self, name: str, answer: RequestAnswer) -> int | None:
        """Answer first: the answer's version when this claim is the one that stands,
        None when another controller answered, or the operator withdrew, first."""
        with translated(f"claiming request {name}"):
            try:
                self._client.create(self.paths.answer(name), answer.to_json())
            except (NodeExistsError, NoNodeError):
                return None
        return 0

    def update(self, name: str, answer: RequestAnswer, version: int) -> int:
        with translated(f"answering request {name}"):
            stat = self._client.set(self.paths.answer(name), answer.to_json(), version)
        return int(stat.version)

    def request(self, name: str) -> OperationRequest | None:
        with translated(f"reading request {name}"):
            try:
                raw, _ = self._client.get(self.paths.request(name))
            except NoNodeError:
                return None
        return _request_or_none(raw)

    def prune(self, closed_before: float) -> list[str]:
        """Remove the requests whose answer closed before `closed_before` (UNIX time)."""
        removed = []
        with translated("pruning old requests"):
            try:
                names = self._client.get_children(self.paths.requests)
            except NoNodeError:
                return []
            for name in names:
                found = self.answer(name)
                if found is None or found[0].state is not AnswerState.CLOSED:
                    continue
                if found[0].at < closed_before:
                    with contextlib.suppress(NoNodeError):
                        self._client.delete(self.paths.request(name), recursive=True)
                    removed.append(name)
        return removed

    # An operation's sentences, as its executor logged them

    def say(self, op_id: str, sentence: str) -> None:
        with translated(f"logging a sentence of {op_id}"):
            self._client.create(
                f"{self.paths.sentences(op_id)}/{SENTENCE_PREFIX}",
                sentence.encode(),
                sequence=True,
                makepath=True,
            )

    def sentences(self, op_id: str, after: str = "") -> list[tuple[str, str]]:
        """(node, sentence) logged after the node `after`, in order."""
        base = self.paths.sentences(op_id)
        with translated(f"reading the sentences of {op_id}"):
            try:
                names = sorted(n for n in self._client.get_children(base) if n > after)
            except NoNodeError:
                return []
            said = []
            for name in names:
                with contextlib.suppress(NoNodeError):
                    raw, _ = self._client.get(f"{base}/{name}")
                    said.append((name, raw.decode(errors="replace")))
        return said


def _request_or_none(raw: bytes) -> OperationRequest | None:
    try:
        return OperationRequest.from_json(raw)
    except (ValueError, TypeError, KeyError):
        return None
