"""supabase-py where it belongs: the Storage adapter built from supabase's client, and the
examples/ script that enqueues and follows a job as a signed-in user through
``schema('queue_public').rpc(...)``. No Supabase server runs here: httpx's MockTransport plays
it, answering with the response shapes of Supabase's docs (GoTrue's password grant, PostgREST's
RPC scalar and rows, its error object, Storage's upload and error bodies)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from python_worker.context import PermanentError
from python_worker.receipts import services
from python_worker.receipts.adapters.errors import PermanentServiceError
from python_worker.receipts.settings import ReceiptSettings

ROOT = Path(__file__).resolve().parents[3]
URL = "https://proj.supabase.co"
USER_ID = "5f0c1a52-9b1e-4d7e-8a55-0c6f0f3d2b11"
# GoTrue POST /auth/v1/token?grant_type=password (supabase.com/docs/reference/api, auth)
SESSION = {
    "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI1ZjBjIn0.c2ln", "token_type": "bearer",
    "expires_in": 3600, "expires_at": 4102444800, "refresh_token": "v1.refresh",
    "user": {"id": USER_ID, "aud": "authenticated", "role": "authenticated",
             "email": "me@example.com", "app_metadata": {"provider": "email",
                                                         "providers": ["email"]},
             "user_metadata": {}, "identities": [], "created_at": "2026-11-01T00:00:00Z",
             "updated_at": "2026-11-01T00:00:00Z"},
}


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "enqueue_and_follow", ROOT / "examples" / "enqueue_and_follow.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client_with(handler: Callable[[httpx.Request], httpx.Response]) -> Any:
    from supabase import ClientOptions, create_client

    return create_client(URL, "anon-key", options=ClientOptions(
        persist_session=False, auto_refresh_token=False,
        httpx_client=httpx.Client(transport=httpx.MockTransport(handler))))


class FakeSupabase:
    """Answers like Supabase; records each request."""

    def __init__(self, states: list[str]) -> None:
        self.requests: list[httpx.Request] = []
        self.states = states

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/auth/v1/token":
            return httpx.Response(200, json=SESSION)
        if path == "/rest/v1/rpc/enqueue_job":
            body = json.loads(request.content)
            if body["job_type"] != "generate_report":
                return httpx.Response(403, json={
                    "code": "42501", "details": None, "hint": None,
                    "message": f"job type {body['job_type']} is not available to end users"})
            return httpx.Response(200, json=42)
        if path == "/rest/v1/my_jobs":
            status = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return httpx.Response(200, json=[{
                "id": 42, "job_type": "generate_report", "status": status,
                "attempt": 0 if status == "pending" else 1, "max_attempts": 3,
                "progress": {"rendered": ["csv"]} if status == "running" else None,
                "last_error": None}])
        return httpx.Response(404, json={"message": f"no route {path}"})


def test_example_signs_in_enqueues_through_queue_public_and_follows_to_the_end(
        capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    fake = FakeSupabase(["pending", "running", "running", "completed"])
    client = client_with(fake)
    assert example.sign_in(client, "me@example.com", "secret") == USER_ID
    job_id = example.enqueue(client, "generate_report", {"period": "2026-04"},
                             unique_key="report:2026-04")
    assert job_id == 42
    final = example.follow(client, job_id, poll=0, sleep=lambda _s: None)
    assert final["status"] == "completed"

    token, rpc, *reads = fake.requests
    assert token.url.params["grant_type"] == "password"
    assert rpc.method == "POST" and rpc.headers["content-profile"] == "queue_public"
    assert json.loads(rpc.content) == {"job_type": "generate_report",
                                       "payload": {"period": "2026-04"},
                                       "unique_key": "report:2026-04"}
    assert rpc.headers["authorization"] == f"Bearer {SESSION['access_token']}"  # as the user
    assert all(r.headers["accept-profile"] == "queue_public" for r in reads)
    assert reads[0].url.params["id"] == "eq.42"
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in out] == ["pending", "running", "completed"]


def test_example_surfaces_a_refused_enqueue_with_its_sqlstate() -> None:
    from postgrest.exceptions import APIError

    example = load_example()
    client = client_with(FakeSupabase(["pending"]))
    with pytest.raises(APIError) as info:
        example.enqueue(client, "process_ocr", {"receipt_id": 1})
    assert info.value.code == "42501"


def test_storage_adapter_is_built_from_supabase_py_with_the_service_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET":  # object info: not there yet
            return httpx.Response(400, json={"statusCode": "404", "error": "not_found",
                                             "message": "Object not found"})
        return httpx.Response(200, json={"Key": "receipts/2026/04/a.pdf", "Id": "9"})

    settings = ReceiptSettings(storage="supabase", supabase_url=URL,
                               supabase_service_key="service-key")
    client = services.supabase_client(settings, http_client=httpx.Client(
        transport=httpx.MockTransport(handler)))
    from python_worker.receipts.adapters.storage import SupabaseStorage

    stored = SupabaseStorage(client.storage.from_("receipts")).put(
        "2026/04/a.pdf", b"%PDF-1.4 a", "application/pdf", "receipt:1")
    assert stored.created and stored.location == "2026/04/a.pdf"
    upload = seen[-1]
    assert upload.url.path == "/storage/v1/object/receipts/2026/04/a.pdf"
    assert upload.headers["authorization"] == "Bearer service-key"
    assert upload.headers["x-upsert"] == "true"


def test_storage_errors_keep_their_classification_through_supabase_py() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(400, json={"statusCode": "404", "error": "not_found",
                                             "message": "Object not found"})
        return httpx.Response(413, json={"statusCode": "413", "error": "EntityTooLarge",
                                         "message": "The object exceeded the maximum size"})

    settings = ReceiptSettings(storage="supabase", supabase_url=URL, supabase_service_key="k")
    client = services.supabase_client(settings, http_client=httpx.Client(
        transport=httpx.MockTransport(handler)))
    from python_worker.receipts.adapters.storage import SupabaseStorage

    with pytest.raises(PermanentServiceError, match="413 EntityTooLarge"):
        SupabaseStorage(client.storage.from_("receipts")).put(
            "2026/04/a.pdf", b"x", "application/pdf", "receipt:1")


def test_supabase_storage_without_credentials_is_a_permanent_configuration_error() -> None:
    with pytest.raises(PermanentError, match="KYU_SUPABASE_URL and KYU_SUPABASE_SERVICE_KEY"):
        services.build_storage(ReceiptSettings(storage="supabase"))
