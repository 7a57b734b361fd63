"""The controller's live status page: `/` (HTML, refreshing itself) and `/reports/ID` (a
drill's report, linked from it). Read-only, GET and HEAD only (the endpoint refuses the
rest), behind the same bearer token as /status.

A browser cannot send `Authorization: Bearer` on a link or a meta refresh, so the page
also accepts the token once in the query (`/?token=TOKEN`): it answers with a redirect
to the same page without it, setting a cookie. The cookie holds not the token but an
HMAC of it (`cookie_value`), so it grants the page and the reports and nothing else
(/status still wants the token itself), it is worthless once the token is rotated, and
it is HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends
it). The query is never logged: the endpoint logs paths, never targets. The first URL,
token included, stays in the browser's history: open it in a private window, or read
the page with curl and the header.

Every value is escaped (jinja2 autoescape) and the page runs no script: its
Content-Security-Policy allows only its own inline styles.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

import jinja2

from orchestrator.adapters.secrets import SecretError
from orchestrator.config.model import Topology
from orchestrator.controller import pageview
from orchestrator.controller.http import (
    PAGE_PREFIX,
    Access,
    Board,
    Request,
    Respond,
    Response,
    bearer_matches,
    text,
)
from orchestrator.controller.pagesource import PageSource
from orchestrator.drill.report import when_text

COOKIE = "sitectl_page"
REPORTS = PAGE_PREFIX  # /reports/ID: a drill's report
REFRESH_S = 5
_COOKIE_PURPOSE = b"sitectl controller status page, cookie v1"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
HTML = "text/html; charset=utf-8"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.controller", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a typo in the template fails the tests
    trim_blocks=True,
    lstrip_blocks=True,
)


def cookie_value(token: str) -> str:
    """What the page's cookie holds for `token`: never the token itself."""
    return hmac.new(token.encode(), _COOKIE_PURPOSE, hashlib.sha256).hexdigest()


# ---- who may look -----------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """Serve (code None), or answer `code`; `cookie`: a Set-Cookie value to send with a
    redirect to `location`."""

    code: int | None
    why: str = ""
    cookie: str | None = None
    location: str | None = None


def admit(access: Access, request: Request) -> Admission:
    """Whether `request` may see the page: the bearer token in the header, the page's
    cookie, or the token once in the query (then a redirect that sets the cookie)."""
    if access.token is None:
        return Admission(
            403,
            "this controller has no bearer token: set controller.http.token_file in the "
            "topology or run it with --token-file",
        )
    try:
        token = access.token.current()
    except SecretError:
        return Admission(503, "the controller's token file is unusable: see its log")
    # A token in the address is taken out of it first, whatever else the request holds:
    # the page is never shown at an address that carries the token.
    query = parse_qs(urlsplit(request.target).query, keep_blank_values=True, max_num_fields=8)
    if "token" in query:
        if not _same(query["token"][0], token):
            return Admission(401, "that is not the controller's bearer token")
        cookie = f"{COOKIE}={cookie_value(token)}; Path=/; HttpOnly; SameSite=Strict"
        return Admission(303, "signed in", cookie=cookie, location=request.path)
    if bearer_matches(request.headers.get("authorization"), token):
        return Admission(None)
    if _same(_cookie(request.headers.get("cookie")), cookie_value(token)):
        return Admission(None)
    return Admission(401, "this page needs the controller's bearer token")


def _same(presented: str, expected: str) -> bool:
    return bool(presented) and hmac.compare_digest(presented.encode(), expected.encode())


def _cookie(header: str | None) -> str:
    if not header:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return ""
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else ""


# ---- rendering ----------------------------------------------------------------------


def render(view: pageview.PageView) -> str:
    return _env.get_template("status.html.j2").render(
        v=view, when=when_text, ago=_ago, secs=_secs, clock=_clock
    )


def refusal_page(code: int, why: str) -> str:
    return _env.get_template("signin.html.j2").render(code=code, why=why)


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "—"
    seconds = now - t
    if seconds < 0:
        return f"in {_secs(-seconds)}"
    return f"{_secs(seconds)} ago"


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def _clock(t: float | None) -> str:
    if t is None:
        return "—"
    return time.strftime("%H:%M:%S", time.gmtime(t))


# ---- serving ------------------------------------------------------------------------


class StatusPage:
    """The page's responder: `respond(request)` answers `/` and `/reports/ID`."""

    def __init__(
        self,
        topo: Topology,
        board: Board,
        access: Access,
        source: PageSource,
        on_view: Callable[[], None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topo, self.board, self.access = topo, board, access
        self.source, self._on_view, self._clock = source, on_view, clock

    def respond(self, request: Request) -> Response:
        admission = admit(self.access, request)
        if admission.code == 303:
            assert admission.cookie is not None and admission.location is not None
            return _html(
                303,
                refusal_page(303, "signed in: on to the page"),
                {"Location": admission.location, "Set-Cookie": admission.cookie},
            )
        if admission.code is not None:
            extra = {"WWW-Authenticate": 'Bearer realm="sitectl"'} if admission.code == 401 else {}
            return _html(admission.code, refusal_page(admission.code, admission.why), extra)
        if request.path.startswith(REPORTS):
            body = self.source.report(request.path[len(REPORTS) :])
            if body is None:
                return text(404, "no such drill report on this controller's host")
            return Response(200, body, HTML, headers=HEADERS)
        if self._on_view is not None:
            self._on_view()  # the controller's sweep keeps pace with the page's refresh
        cluster = self.source.latest()
        view = pageview.build(
            self.topo, self.board.read(), cluster, self._clock(), refresh_s=REFRESH_S
        )
        return _html(200, render(view))

    def close(self) -> None:
        self.source.close()


def _html(code: int, body: str, extra: Mapping[str, str] | None = None) -> Response:
    return Response(code, body.encode(), HTML, headers={**HEADERS, **(extra or {})})


def status_page(
    topo: Topology,
    board: Board,
    access: Access,
    source: PageSource,
    *,
    on_view: Callable[[], None] | None = None,
) -> tuple[StatusPage, Respond]:
    """The page and its responder for http.serve(page=…); `on_view` is called at each
    view (the controller's Monitor.viewed)."""
    page = StatusPage(topo, board, access, source, on_view)
    return page, page.respond
