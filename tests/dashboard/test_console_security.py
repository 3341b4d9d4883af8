"""Who may act in the console: every action refuses an unauthenticated POST, a POST without the
session's CSRF token and a cross-origin POST, and changes nothing; read-only refuses all;
sign-in needs the token; every attempt is in the audit log; payloads can be hidden."""

from __future__ import annotations

import logging

import pytest
from console_helpers import TOKEN, Seeded, make_client, sign_in, sql
from starlette.testclient import TestClient


def actions(s: Seeded) -> list[tuple[str, dict[str, object]]]:
    dead, waiting = s.dead[0], s.waiting[0]
    return [
        (f"/jobs/{dead}/retry", {}),
        (f"/jobs/{waiting}/cancel", {}),
        ("/dead/bulk", {"action": "retry", "ids": [dead], "confirmed": "yes"}),
        ("/dead/bulk", {"action": "discard", "ids": [dead], "confirmed": "yes"}),
        ("/queues/emails/pause", {}),
        ("/queues/emails/resume", {}),
        ("/logout", {}),
    ]


def snapshot(url: str, s: Seeded) -> list[dict[str, object]]:
    """What any of the actions would change."""
    return sql(url, "select (select array_agg(id order by id) from queue.dead_letter) as dead,"
                    " (queue.get_job(%s)).status as waiting_status,"
                    " (select paused from queue.queue_policies where queue_name = 'emails')"
                    " as paused", (s.waiting[0],))


def test_every_action_refuses_an_unauthenticated_post(client: TestClient, seeded: Seeded,
                                                       module_db_url: str) -> None:
    before = snapshot(module_db_url, seeded)
    for path, data in actions(seeded):
        r = client.post(path, data={**data, "csrf": "0" * 64})
        assert r.status_code == 401, (path, r.status_code)
        assert "sign in first" in r.text
        # a browser is sent to the sign-in page instead
        html = client.post(path, data=data, headers={"accept": "text/html"})
        assert html.status_code == 303 and html.headers["location"].startswith("/login?next=")
    assert snapshot(module_db_url, seeded) == before


def test_a_signed_in_post_without_the_csrf_token_is_refused(client: TestClient, seeded: Seeded,
                                                             module_db_url: str) -> None:
    csrf = sign_in(client)
    before = snapshot(module_db_url, seeded)
    for path, data in actions(seeded):
        missing = client.post(path, data=data)
        assert missing.status_code == 403 and "CSRF" in missing.text, path
        wrong = client.post(path, data={**data, "csrf": csrf[:-1] + ("0" if csrf[-1] != "0"
                                                                      else "1")})
        assert wrong.status_code == 403, path
    assert snapshot(module_db_url, seeded) == before


def test_a_cross_origin_post_is_refused_even_with_the_token(client: TestClient, seeded: Seeded,
                                                            module_db_url: str) -> None:
    csrf = sign_in(client)
    before = snapshot(module_db_url, seeded)
    r = client.post("/queues/emails/pause", data={"csrf": csrf},
                    headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.text
    r = client.post("/queues/emails/pause", data={"csrf": csrf},
                    headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403
    assert snapshot(module_db_url, seeded) == before


def test_sign_in_needs_the_token_and_its_form(client: TestClient) -> None:
    page = client.get("/login")
    login_csrf = client.cookies.get("kyu_login")
    assert page.status_code == 200 and login_csrf
    wrong = client.post("/login", data={"token": "guess", "login_csrf": login_csrf})
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    assert "kyu_session" not in client.cookies
    forged = client.post("/login", data={"token": TOKEN, "login_csrf": "not-the-cookie"})
    assert forged.status_code == 403
    ok = client.post("/login?next=/dead", data={"token": TOKEN, "login_csrf": login_csrf})
    assert ok.status_code == 303 and ok.headers["location"] == "/dead"
    cookie = ok.headers["set-cookie"]
    assert "kyu_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    for elsewhere in ("//evil.example", "/\\evil.example", "https://evil.example"):
        client.get("/login")  # a fresh form: the last sign-in spent its cookie
        away = client.post("/login", params={"next": elsewhere},
                           data={"token": TOKEN, "login_csrf": client.cookies["kyu_login"]})
        assert away.headers["location"] == "/", elsewhere  # no open redirect


def test_a_forged_session_cookie_is_no_session(client: TestClient, seeded: Seeded) -> None:
    client.cookies.set("kyu_session", "a" * 32 + ".1700000000." + "b" * 64)
    r = client.post(f"/jobs/{seeded.waiting[0]}/cancel", data={"csrf": "x"})
    assert r.status_code == 401


def test_signed_in_actions_change_the_database_and_are_audited(
        client: TestClient, seeded: Seeded, module_db_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    csrf = sign_in(client)
    caplog.set_level(logging.INFO, logger="python_worker.dashboard.audit")
    r = client.post("/queues/reports/pause", data={"csrf": csrf})
    assert r.status_code == 303 and "queue%20reports%20paused" in r.headers["location"]
    assert sql(module_db_url, "select paused from queue.queue_policies"
                              " where queue_name = 'reports'")[0]["paused"] is True
    client.post("/queues/reports/resume", data={"csrf": csrf})
    assert sql(module_db_url, "select paused from queue.queue_policies"
                              " where queue_name = 'reports'")[0]["paused"] is False
    unknown = client.post("/queues/nope/pause", data={"csrf": csrf})
    assert "unknown%20queue%3A%20nope" in unknown.headers["location"]
    client.post("/queues/emails/pause", data={})  # refused: no CSRF
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("audit")]
    assert any(m.startswith("pause queue reports by session:") and m.endswith(": done")
               for m in lines)
    assert any(m.startswith("resume queue reports") for m in lines)
    assert any("pause queue nope" in m and "unknown queue: nope" in m for m in lines)
    assert any(m.startswith("refused pause queue emails") and "CSRF" in m for m in lines)


def test_read_only_mode_refuses_everything_and_offers_no_sign_in(
        module_db_url: str, seeded: Seeded) -> None:
    before = snapshot(module_db_url, seeded)
    with make_client(module_db_url, read_only=True) as c:
        assert c.get("/login").status_code == 403
        for path, data in actions(seeded):
            assert c.post(path, data=data).status_code == 403, path
        page = c.get("/queues").text
        assert "read-only" in page and "Pause" not in page and 'name="csrf"' not in page
        dead = c.get("/dead").text
        assert "Retry selected" not in dead
    assert snapshot(module_db_url, seeded) == before


def test_hidden_payloads_are_never_sent(module_db_url: str, seeded: Seeded) -> None:
    with make_client(module_db_url, hide_payloads=True) as c:
        page = c.get(f"/jobs/{seeded.dead[0]}").text
        assert "bounce0@example.jp" not in page and "Hidden" in page
        done = c.get(f"/jobs/{seeded.completed[0]}").text
        assert "mail.example.jp" not in done  # the result too
        filtered = c.get("/jobs", params={"payload": '{"to": "bounce0@example.jp"}'})
        assert filtered.status_code == 400
        assert "payloads are hidden" in filtered.text
    with make_client(module_db_url) as c:  # the same page, shown
        assert "bounce0@example.jp" in c.get(f"/jobs/{seeded.dead[0]}").text


def test_login_to_read_guards_the_pages_too(module_db_url: str, seeded: Seeded) -> None:
    with make_client(module_db_url, login_to_read=True) as c:
        r = c.get("/jobs")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/jobs"
        assert c.get("/health").status_code in (200, 503)  # probes stay open
        sign_in(c)
        assert c.get("/jobs").status_code == 200


def test_pages_carry_a_strict_content_security_policy(client: TestClient) -> None:
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert r.headers["cache-control"] == "no-store"
