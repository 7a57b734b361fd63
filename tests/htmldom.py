"""HTML read back for assertions (the status page's unit and lab tests): every element
with its attributes and its text, and what did not close."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any, ClassVar


class Dom(HTMLParser):
    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self.open: list[dict[str, Any]] = []
        self.bad: list[str] = []  # end tags that close nothing open
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": ""}
        self.elements.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1]["tag"] != tag:
            self.bad.append(f"</{tag}>")
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element["text"] += data

    def find(self, **attrs: str) -> list[dict[str, Any]]:
        return [e for e in self.elements if all(e.get(k) == v for k, v in attrs.items())]

    def one(self, **attrs: str) -> dict[str, Any]:
        (found,) = self.find(**attrs)
        return found

    def with_attribute(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.elements if name in e]


def words(element: dict[str, Any]) -> str:
    """An element's text with its white space collapsed, as a person reads it."""
    return " ".join(str(element["text"]).split())
