"""How a handler's exception becomes a failure: the duck-typed protocol of execution.classify.

Pure function, no database: the end-to-end versions are in test_worker_outcomes.py."""

from __future__ import annotations

from datetime import UTC, datetime

from kyu_test_handlers import CredentialsRevoked, Throttled

from python_worker import PermanentError, RetryLater
from python_worker.execution import classify
from python_worker.outcomes import Failed

LATER = datetime(2030, 1, 1, tzinfo=UTC)


def raised(exc: Exception) -> Exception:
    """``exc`` with a traceback, as a handler would have raised it."""
    try:
        raise exc
    except Exception as caught:  # noqa: BLE001
        return caught


def test_retry_later_retries_at_its_time() -> None:
    f = classify(raised(RetryLater(LATER)))
    assert (f.retryable, f.retry_at) == (True, LATER)
    assert f.error.startswith("RetryLater: retry requested at 2030-01-01")


def test_permanent_errors_and_their_subclasses_are_dead_at_once() -> None:
    assert classify(raised(PermanentError("bad input"))) == Failed(
        "PermanentError: bad input", False, None)
    assert classify(raised(CredentialsRevoked("revoked"))) == Failed(
        "CredentialsRevoked: revoked", False, None)


def test_a_permanent_errors_public_message_is_carried_apart_from_the_error() -> None:
    f = classify(raised(PermanentError("row 7 of table x is corrupt", public="Please re-upload.")))
    assert (f.error, f.retryable, f.public) == (
        "PermanentError: row 7 of table x is corrupt", False, "Please re-upload.")


def test_an_attribute_permanent_true_is_dead_at_once_but_only_when_it_is_true() -> None:
    assert classify(raised(Throttled("gone", permanent=True))) == Failed(
        "Throttled: gone", False, None)
    truthy = raised(Throttled("maybe"))
    truthy.permanent = 1  # type: ignore[attr-defined]
    assert classify(truthy).retryable


def test_a_tz_aware_retry_at_is_the_retry_time_and_a_naive_one_is_ignored() -> None:
    f = classify(raised(Throttled("429", retry_at=LATER)))
    assert (f.retryable, f.retry_at) == (True, LATER)
    assert f.error.startswith("Throttled: 429\nTraceback")
    naive = raised(Throttled("429", retry_at=LATER.replace(tzinfo=None)))
    assert classify(naive).retry_at is None
    not_a_time = raised(Throttled("429"))
    not_a_time.retry_at = "soon"  # type: ignore[assignment]
    assert classify(not_a_time).retry_at is None


def test_anything_else_is_retryable_with_a_short_traceback() -> None:
    f = classify(raised(ValueError("boom")))
    assert (f.retryable, f.retry_at) == (True, None)
    assert f.error.startswith("ValueError: boom\nTraceback (most recent call last, shortened):")
    assert "test_failure_protocol.py" in f.error
    assert len(classify(raised(ValueError("x" * 10_000))).error) == 4000
