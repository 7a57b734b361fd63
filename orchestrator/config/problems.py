"""One problem with the topology file, printed as one line an operator can act on."""

from __future__ import annotations

from dataclasses import dataclass

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    field: str  # dotted, e.g. dns.zones.0.records.1.values
    message: str  # "what is wrong — how to fix it"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field or '(top level)'}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


def dotted(path: FieldPath) -> str:
    return ".".join(str(part) for part in path)
