"""The operation table: ECR operation name -> handler. Handler modules fill it with @operation.

A handler parses its params, makes one core call and returns the output as a dict the protocol
serializes against the model's output shape. It runs in a worker thread (the core is synchronous).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pier.core.context import Core
from pier.core.principals import Caller

Params = dict[str, Any]
Handler = Callable[[Core, Caller, Params], dict[str, Any]]

HANDLERS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in HANDLERS:
            raise RuntimeError(f"two handlers for {name}")
        HANDLERS[name] = handler
        return handler

    return register
