"""The console's application: routes, the guard around every action, and ``serve``.

Actions (POST) go through ``_action``: refused in read-only mode (403), without a session (401,
or a redirect to sign in for a browser), with a wrong or missing CSRF token (403), or from
another origin (403); each attempt, allowed or refused, is one line in the audit log
(``python_worker.dashboard.audit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import pages
from .queries import ConsoleQueries, Outcome, message
from .security import LOGIN_COOKIE, SESSION_COOKIE, ConsoleSettings, Guard, Session, audit
from .web import HERE, render

log = logging.getLogger("python_worker.dashboard")

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
MAX_BULK = 500  # ids per bulk action
FAILED_SIGN_IN_DELAY = 0.5  # seconds


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SessionMiddleware(BaseHTTPMiddleware):
    """Attaches request.state.session, enforces login_to_read, sets security headers."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        state = request.app.state
        request.state.session = state.guard.session(request.cookies.get(SESSION_COOKIE))
        public = request.url.path.startswith(("/static/", "/login")) or request.url.path in (
            "/health", "/metrics")
        if state.settings.login_to_read and request.state.session is None and not public:
            if request.method == "GET":
                return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
            return PlainTextResponse("sign in first", 401)
        try:
            response = await call_next(request)
        except psycopg.OperationalError as exc:
            log.warning("database unreachable: %s", exc)
            response = render(request, "error.html", {
                "title": "Database unreachable", "error": str(exc).strip()}, status=503)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


def _same_origin(request: Request) -> bool:
    """A browser names the page a POST came from; it must be this console."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return False
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None  # no header: not a browser form post from elsewhere
    return urlsplit(origin).netloc == request.headers.get("host")


async def _guarded(request: Request, action: str, target: str) -> tuple[Session, FormData]:
    state = request.app.state
    form = await request.form()
    session: Session | None = request.state.session
    who = session.label if session else "anonymous"
    refusal = None
    if state.settings.read_only:
        refusal = Refused(403, "this console is read-only")
    elif not _same_origin(request):
        refusal = Refused(403, "cross-origin request refused")
    elif session is None:
        refusal = Refused(401, "sign in first: actions need the console's token")
    elif not state.guard.check_csrf(session, str(form.get("csrf", ""))):
        refusal = Refused(403, "missing or wrong CSRF token: reload the page and try again")
    if refusal:
        audit.warning("refused %s %s by %s from %s: %s", action, target, who, _client(request),
                      refusal.reason, extra={"action": action, "target": target, "by": who,
                                             "outcome": "refused"})
        raise refusal
    assert session is not None
    return session, form


def _audit_done(request: Request, session: Session, action: str, target: str,
                outcome: str) -> None:
    audit.info("%s %s by %s from %s: %s", action, target, session.label, _client(request),
               outcome, extra={"action": action, "target": target, "by": session.label,
                               "outcome": outcome})


def _back(path: str, outcome: Outcome | None = None, *, msg: str | None = None,
          err: str | None = None) -> RedirectResponse:
    if outcome is not None:
        msg = msg if outcome.done else None
        err = "; ".join(e for _, e in outcome.failed[:5]) or None
    q = "&".join(f"{k}={quote(v)}" for k, v in (("msg", msg), ("err", err)) if v)
    return RedirectResponse(f"{path}?{q}" if q else path, 303)


def _refusal_response(request: Request, exc: Refused) -> Response:
    if exc.status == 401 and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
    return PlainTextResponse(exc.reason, exc.status)


def _action(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Any]:
    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except Refused as exc:
            return _refusal_response(request, exc)
    return wrapped


@_action
async def job_action(request: Request) -> Response:
    job_id: int = request.path_params["job_id"]
    verb: str = request.path_params["verb"]
    session, _ = await _guarded(request, verb, f"job {job_id}")
    if verb not in ("retry", "cancel"):
        return PlainTextResponse(f"no action {verb!r} on a job (retry, cancel)", 404)
    db: ConsoleQueries = request.app.state.db
    outcome = await (db.retry([job_id]) if verb == "retry" else db.cancel([job_id]))
    _audit_done(request, session, verb, f"job {job_id}",
                "done" if outcome.done else outcome.failed[0][1])
    done = "is pending again" if verb == "retry" else "was cancelled"
    return _back(f"/jobs/{job_id}", outcome, msg=f"job {job_id} {done}")


@_action
async def queue_action(request: Request) -> Response:
    name: str = request.path_params["name"]
    verb: str = request.path_params["verb"]
    session, _ = await _guarded(request, verb, f"queue {name}")
    if verb not in ("pause", "resume"):
        return PlainTextResponse(f"no action {verb!r} on a queue (pause, resume)", 404)
    db: ConsoleQueries = request.app.state.db
    try:
        await (db.pause(name) if verb == "pause" else db.resume(name))
    except psycopg.DatabaseError as exc:
        _audit_done(request, session, verb, f"queue {name}", message(exc))
        return _back("/queues", err=message(exc))
    _audit_done(request, session, verb, f"queue {name}", "done")
    return _back("/queues", msg=f"queue {name} {verb}d")


@_action
async def dead_bulk(request: Request) -> Response:
    """Step 1 (no ``confirmed``): the confirmation page. Step 2: do it."""
    form = await request.form()
    verb = str(form.get("action", ""))
    raw = form.getlist("ids")
    session, form = await _guarded(request, verb or "bulk", f"{len(raw)} dead jobs")
    if verb not in ("retry", "discard"):
        return PlainTextResponse(f"action must be retry or discard, got {verb!r}", 400)
    try:
        ids = sorted({int(str(i)) for i in raw})
    except ValueError:
        return PlainTextResponse(f"ids must be job ids, got {raw!r}", 400)
    if not ids:
        return _back("/dead", err="select at least one job first")
    if len(ids) > MAX_BULK:
        return _back("/dead", err=f"at most {MAX_BULK} jobs at once, got {len(ids)}")
    if form.get("confirmed") != "yes":
        return render(request, "confirm.html", {"verb": verb, "ids": ids})
    db: ConsoleQueries = request.app.state.db
    outcome = await (db.retry(ids) if verb == "retry" else db.discard_dead(ids))
    _audit_done(request, session, verb, f"jobs {ids}",
                f"{len(outcome.done)} done, {len(outcome.failed)} refused")
    what = "pending again" if verb == "retry" else "discarded"
    return _back("/dead", outcome, msg=f"{len(outcome.done)} jobs {what}")


async def login(request: Request) -> Response:
    state = request.app.state
    next_path = request.query_params.get("next", "/")
    # only a path on this console: "//host" and "/\\host" are other hosts to a browser
    if not next_path.startswith("/") or next_path[1:2] in ("/", "\\"):
        next_path = "/"
    if state.settings.read_only:
        return render(request, "login.html", {"next": next_path, "login_csrf": "",
                                              "error": "this console is read-only"}, status=403)
    if request.method == "GET":
        token = state.guard.new_session().split(".")[0]  # any random value will do
        resp = render(request, "login.html", {"next": next_path, "login_csrf": token})
        resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=state.settings.secure_cookies)
        return resp
    form = await request.form()
    given_csrf = str(form.get("login_csrf", ""))
    client = _client(request)
    if not _same_origin(request) or not given_csrf or given_csrf != request.cookies.get(
            LOGIN_COOKIE):
        audit.warning("refused sign-in from %s: CSRF", client)
        return PlainTextResponse("sign-in form expired: reload it", 403)
    if not state.guard.check_token(str(form.get("token", ""))):
        audit.warning("refused sign-in from %s: wrong token", client)
        await asyncio.sleep(FAILED_SIGN_IN_DELAY)  # guessing the token costs time
        return render(request, "login.html", {"next": next_path, "login_csrf": given_csrf,
                                              "error": "wrong token"}, status=401)
    cookie = state.guard.new_session()
    session = state.guard.session(cookie)
    assert session is not None
    audit.info("signed in %s from %s", session.label, client)
    resp = RedirectResponse(next_path, 303)
    resp.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict",
                    secure=state.settings.secure_cookies,
                    max_age=int(state.settings.session_hours * 3600))
    resp.delete_cookie(LOGIN_COOKIE)
    return resp


@_action
async def logout(request: Request) -> Response:
    session, _ = await _guarded(request, "sign-out", "console")
    _audit_done(request, session, "sign-out", "console", "done")
    resp = RedirectResponse("/", 303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


def create_app(database_url: str, settings: ConsoleSettings | None = None) -> Starlette:
    settings = settings or ConsoleSettings()
    db = ConsoleQueries(database_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await db.open()
        try:
            yield
        finally:
            await db.close()

    routes = [
        Route("/", pages.overview),
        Route("/jobs", pages.jobs),
        Route("/jobs/{job_id:int}", pages.job),
        Route("/jobs/{job_id:int}/{verb:str}", job_action, methods=["POST"]),
        Route("/dead", pages.dead_letter),
        Route("/dead/bulk", dead_bulk, methods=["POST"]),
        Route("/queues", pages.queues),
        Route("/queues/{name:str}/{verb:str}", queue_action, methods=["POST"]),
        Route("/workers", pages.workers),
        Route("/schedules", pages.schedules),
        Route("/breakers", pages.breakers),
        Route("/health", pages.health_json),
        Route("/metrics", pages.metrics_text),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware)],
                    lifespan=lifespan)
    app.state.settings = settings
    app.state.guard = Guard(settings)
    app.state.db = db
    return app


def serve(database_url: str, *, host: str | None = None, port: int | None = None,
          read_only: bool | None = None, hide_payloads: bool | None = None) -> int:
    import uvicorn

    overrides = {k: v for k, v in (("host", host), ("port", port), ("read_only", read_only),
                                   ("hide_payloads", hide_payloads)) if v is not None}
    try:
        settings = ConsoleSettings(**overrides)
    except ValueError as exc:
        print(f"kyu: bad console settings: {exc}", file=sys.stderr)
        return 2
    app = create_app(database_url, settings)
    guard: Guard = app.state.guard
    if not _is_loopback(settings.host):
        log.warning("the console listens on %s: anyone who reaches it can read the queue"
                    "%s", settings.host, "" if settings.login_to_read else
                    " (set KYU_DASHBOARD_LOGIN_TO_READ=1 to require sign-in for pages)")
    where = f"http://{settings.host}:{settings.port}/"
    if settings.read_only:
        print(f"kyu console (read-only) on {where}", file=sys.stderr, flush=True)
    elif guard.generated_token:
        print(f"kyu console on {where}\n  sign in with this token (set KYU_DASHBOARD_TOKEN to"
              f" choose one): {guard.token}", file=sys.stderr, flush=True)
    else:
        print(f"kyu console on {where} (sign in with KYU_DASHBOARD_TOKEN)", file=sys.stderr,
              flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                access_log=False)
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
