"""What salvage did, in one sentence for an operation's summary and the drill report,
from the figures its steps record (pure)."""

from __future__ import annotations

from collections.abc import Mapping


def mail_copied(volume: str) -> str:
    return f"salvage/mail/{volume}/copied"


def objects_copied(bucket: str) -> str:
    return f"salvage/objects/{bucket}/copied"


LDAP_TO_REVIEW = "salvage/ldap/to_review"


def summarize(figures: Mapping[str, object], old_site: str) -> str | None:
    """None when no salvage step ran (no such figures)."""

    def total(prefix: str, suffix: str) -> int | None:
        values = [v for k, v in figures.items() if k.startswith(prefix) and k.endswith(suffix)]
        return sum(int(v) for v in values if isinstance(v, int)) if values else None

    mail = total("salvage/mail/", "/copied")
    found = total("salvage/objects/", "/copied")
    review = figures.get(LDAP_TO_REVIEW)
    if mail is None and found is None and review is None:
        return None
    parts = []
    if mail is not None:
        parts.append(f"{mail} message(s)")
    if found is not None:
        parts.append(f"{found} object(s)")
    sentence = f"salvaged from {old_site}: {', '.join(parts) or 'nothing'}"
    if isinstance(review, int):
        sentence += f"; {review} LDAP change(s) for a person to review"
    return sentence
