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
# Handlers that may run on the event loop: they answer from memory or raise NotInMemory (core/reads.py),
# and the operation's handler then runs in a thread. A thread hop per call costs more than the answer
# under load (64 calls in flight doubled a DescribeImages page's CPU).
FROM_MEMORY: dict[str, Handler] = {}


def operation(name: str, table: dict[str, Handler] = HANDLERS) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in table:
            raise RuntimeError(f"two handlers for {name}")
        table[name] = handler
        return handler

    return register


def from_memory(name: str) -> Callable[[Handler], Handler]:
    return operation(name, FROM_MEMORY)
