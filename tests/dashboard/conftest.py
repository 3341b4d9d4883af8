"""Fixtures of the console tests: a seeded database per module, the app in-process (Starlette's
TestClient, real database) and the console as a real server for the browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from console_helpers import Seeded, make_client, seed
from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def seeded(module_db_url: str) -> Seeded:
    return seed(module_db_url)


@pytest.fixture
def client(module_db_url: str, seeded: Seeded) -> Iterator[TestClient]:
    with make_client(module_db_url) as c:
        yield c
