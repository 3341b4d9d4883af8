"""Fixtures of the console tests: a seeded database per module, the app in-process (Starlette's
TestClient, real database) and the console as a real server for the browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from console_helpers import TOKEN, Seeded, seed
from starlette.testclient import TestClient

from python_worker.dashboard.app import create_app
from python_worker.dashboard.security import ConsoleSettings


@pytest.fixture(scope="module")
def seeded(module_db_url: str) -> Seeded:
    return seed(module_db_url)


def make_client(url: str, **settings: object) -> TestClient:
    app = create_app(url, ConsoleSettings(token=TOKEN, **settings))  # type: ignore[arg-type]
    return TestClient(app, base_url="http://127.0.0.1:8400", follow_redirects=False)


@pytest.fixture
def client(module_db_url: str, seeded: Seeded) -> Iterator[TestClient]:
    with make_client(module_db_url) as c:
        yield c


def sign_in(c: TestClient) -> str:
    """Signs in through the form; returns the CSRF token of the new session."""
    page = c.get("/login")
    login_csrf = page.cookies.get("kyu_login") or c.cookies.get("kyu_login")
    r = c.post("/login", data={"token": TOKEN, "login_csrf": login_csrf})
    assert r.status_code == 303, r.text
    return csrf_of(c)


def csrf_of(c: TestClient) -> str:
    import re

    html = c.get("/queues").text
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "no CSRF token on the page of a signed-in user"
    return m.group(1)
