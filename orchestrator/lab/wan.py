"""WAN cuts as data: which directed links a partition cuts, and the router's nft rules.

Pure: no process is run here. An endpoint is a site or `ops` (the operator's network);
a cut link (A, B) drops every packet from A's network to B's at the router. A partition
of a site cuts both directions of each link named, unless it is one-way, which drops only
what the site sends (an asymmetric partition: its peers' packets still arrive).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from orchestrator.lab import layout

Link = tuple[str, str]  # (from, to): packets from the first's network to the second's

TABLE = "sitectl_wan"  # the router's nft table; the router namespace holds nothing else
CHAIN = "cuts"  # not "fwd": nft reserves that word


def endpoints() -> tuple[str, ...]:
    return (*layout.SITES, layout.OPS)


def check_endpoint(name: str) -> str:
    if name not in endpoints():
        raise ValueError(f"unknown site {name!r}: the lab's networks are {', '.join(endpoints())}")
    return name


def partition_links(site: str, others: Sequence[str] = (), oneway: bool = False) -> set[Link]:
    """The links `lab partition SITE [--from OTHER,…] [--oneway]` cuts.

    Without `others`, SITE is cut from every other site and from ops.
    """
    check_endpoint(site)
    peers = [check_endpoint(o) for o in others] or [e for e in endpoints() if e != site]
    if site in peers:
        raise ValueError(f"--from names {site} itself: name the sites to cut {site} from")
    links = {(site, peer) for peer in peers}
    if not oneway:
        links |= {(peer, site) for peer in peers}
    return links


def healed(cuts: Iterable[Link], site: str | None = None) -> set[Link]:
    """What stays cut after `heal-network [SITE]`: nothing, or every link not touching SITE."""
    if site is None:
        return set()
    check_endpoint(site)
    return {link for link in cuts if site not in link}


def ruleset(cuts: Iterable[Link]) -> str:
    """An nft script that replaces the router's table with exactly these cuts, atomically.

    The first line makes sure the table exists, so the delete never fails; nft applies the
    whole script as one transaction, so no packet sees a half-written set of cuts.
    """
    rules = "".join(
        f"        ip saddr {layout.network(src)} ip daddr {layout.network(dst)} drop\n"
        for src, dst in sorted(cuts)
    )
    return (
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        f"    chain {CHAIN} {{\n"
        "        type filter hook forward priority 0; policy accept;\n"
        f"{rules}"
        "    }\n"
        "}\n"
    )


def describe(cuts: Iterable[Link]) -> list[str]:
    """One phrase per cut, both directions of a link folded: "dc1 ↔ dc2", "dc1 → witness"."""
    cuts = set(cuts)
    phrases = []
    for src, dst in sorted(cuts):
        if (dst, src) in cuts:
            if src < dst:
                phrases.append(f"{src} <-> {dst}")
        else:
            phrases.append(f"{src} -> {dst}")
    return phrases


def link_cut(cuts: Iterable[Link], a: str, b: str) -> bool:
    """Whether a connection between a and b fails: TCP needs both directions."""
    cuts = set(cuts)
    return (a, b) in cuts or (b, a) in cuts
