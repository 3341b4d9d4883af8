"""Handlers by job type: the ``@handler`` decorator, payload models and per-type settings.

    from python_worker import handler

    class Resize(BaseModel):
        path: str
        width: int

    @handler("images.resize", timeout=60, queue="default", max_attempts=3)
    def resize(job: Resize, ctx: JobContext) -> dict: ...

The first parameter's annotation is the payload: a pydantic model (validated; a payload that
does not validate is dead-lettered with the pydantic message) or ``dict`` (passed as is). An
optional second parameter receives the ``JobContext``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

log = logging.getLogger("python_worker.registry")


@dataclass(frozen=True)
class Handler:
    job_type: str
    func: Callable[..., Any]
    is_async: bool
    model: type[BaseModel] | None
    wants_ctx: bool
    timeout: float | None = None
    queue: str = "default"
    max_attempts: int | None = None
    priority: int = 50
    transaction: bool = False
    description: str | None = None

    def payload(self, raw: Any) -> Any:
        """The handler's first argument; raises pydantic.ValidationError on a bad payload."""
        if self.model is None:
            return raw
        return self.model.model_validate(raw)


def _payload_model(func: Callable[..., Any]) -> tuple[type[BaseModel] | None, bool]:
    params = list(inspect.signature(func).parameters.values())
    if not params:
        raise TypeError(f"handler {func.__qualname__} must take the payload as first parameter")
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolved forward refs: fall back to raw annotations
        hints = {p.name: p.annotation for p in params}
    ann = hints.get(params[0].name, inspect.Parameter.empty)
    model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model, len(params) >= 2


class Registry:
    """Handlers by job type. The module-level ``registry`` is what ``@handler`` fills."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def __contains__(self, job_type: str) -> bool:
        return job_type in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)

    def get(self, job_type: str) -> Handler | None:
        return self._handlers.get(job_type)

    def all(self) -> list[Handler]:
        return list(self._handlers.values())

    def job_types(self) -> list[str]:
        return sorted(self._handlers)

    def add(self, h: Handler) -> None:
        old = self._handlers.get(h.job_type)
        if old is not None and old.func is not h.func:
            log.warning("handler for %s replaced by %s", h.job_type, h.func.__qualname__)
        self._handlers[h.job_type] = h

    def handler(
        self,
        job_type: str,
        *,
        timeout: float | None = None,
        queue: str = "default",
        max_attempts: int | None = None,
        priority: int = 50,
        transaction: bool = False,
        description: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            model, wants_ctx = _payload_model(func)
            self.add(
                Handler(
                    job_type=job_type,
                    func=func,
                    is_async=inspect.iscoroutinefunction(func),
                    model=model,
                    wants_ctx=wants_ctx,
                    timeout=timeout,
                    queue=queue,
                    max_attempts=max_attempts,
                    priority=priority,
                    transaction=transaction,
                    description=description or (inspect.getdoc(func) or "").split("\n")[0] or None,
                )
            )
            return func

        return register


registry = Registry()


def handler(
    job_type: str,
    *,
    timeout: float | None = None,
    queue: str = "default",
    max_attempts: int | None = None,
    priority: int = 50,
    transaction: bool = False,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function (sync or async) as the handler of ``job_type``.

    ``timeout`` (seconds) bounds one attempt (default: the claimed lease); ``queue``,
    ``max_attempts``, ``priority`` are used when the job type is not yet registered in SQL;
    ``transaction=True`` hands an async handler ``ctx.connection`` (sync handlers get it lazily).
    """
    return registry.handler(
        job_type,
        timeout=timeout,
        queue=queue,
        max_attempts=max_attempts,
        priority=priority,
        transaction=transaction,
        description=description,
    )


def import_handlers(modules: list[str]) -> list[str]:
    """Import the handler modules a worker was given (``--handlers`` / ``KYU_HANDLERS``).

    There is no default set: a worker without handlers would claim nothing useful, so it is
    refused with the fix named."""
    if not modules:
        raise ValueError("no handler modules: pass --handlers my_app.jobs (repeatable) or set"
                         " KYU_HANDLERS=my_app.jobs")
    for name in modules:
        importlib.import_module(name)
    return list(modules)
