"""Templates and their filters, and ``render``: one page, or only its live region."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _ts(v: datetime | None) -> str:
    return "-" if v is None else v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(v: timedelta | float | None) -> str:
    """Compact and exact where it matters: 350 ms, 4.2 s, 30 s, 5m, 1h 30m, 7d."""
    if v is None:
        return "-"
    secs = v.total_seconds() if isinstance(v, timedelta) else float(v)
    if secs < 1:
        return f"{secs * 1000:.0f} ms"
    if secs < 60:
        return f"{secs:.0f} s" if secs == int(secs) or secs >= 10 else f"{secs:.1f} s"
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        n, secs = divmod(int(secs), size) if size > 1 else (int(secs), 0)
        if n:
            parts.append(f"{n}{unit}")
    return " ".join(parts[:2])


def _ago(v: datetime | None) -> str:
    if v is None:
        return "never"
    delta = (datetime.now(UTC) - v).total_seconds()
    return f"in {_duration(-delta)}" if delta < 0 else f"{_duration(delta)} ago"


def _pct(v: float | Decimal | None) -> str:
    return "-" if v is None else f"{float(v) * 100:.1f}%"


def _num(v: float | Decimal | None) -> str:
    if v is None:
        return "-"
    f = float(v)
    return f"{f:.0f}" if f == int(f) else f"{f:.2f}"


def _short(text: str | None, n: int = 90) -> str:
    first = (text or "").split("\n", 1)[0]
    return first if len(first) <= n else first[: n - 1] + "…"


templates.env.filters.update(ts=_ts, duration=_duration, ago=_ago, pct=_pct, num=_num,
                             short=_short, with_param=lambda d, k, v: {**d, k: v},
                             tojson_pretty=lambda v: json.dumps(
                                 v, indent=2, ensure_ascii=False, default=str))


def render(request: Request, name: str, ctx: dict[str, Any], *, live: str | None = None,
           status: int = 200) -> Response:
    """The page, or with ``?fragment=1`` (the live refresh) only its live region."""
    state = request.app.state
    session = request.state.session
    full = {
        "settings": state.settings,
        "session": session,
        "csrf": state.guard.csrf_token(session),
        "can_act": session is not None and not state.settings.read_only,
        "path": request.url.path,
        "msg": request.query_params.get("msg"),
        "err": request.query_params.get("err"),
        "now": datetime.now(UTC),
        "live_template": live,
        **ctx,
    }
    if live and request.query_params.get("fragment") == "1":
        return templates.TemplateResponse(request, live, full, status_code=status)
    return templates.TemplateResponse(request, name, full, status_code=status)
