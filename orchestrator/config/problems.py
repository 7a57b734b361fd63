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
        # One line whatever the file held: a key or value with a line break in it
        # must not start a line that does not name the file.
        text = f"{self.file}:{self.line}: {self.field or '(top level)'}: {self.message}"
        return " ".join(text.splitlines())

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


def dotted(path: FieldPath) -> str:
    return ".".join(str(part) for part in path)
