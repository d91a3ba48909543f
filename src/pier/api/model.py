"""botocore's ecr-public service model, loaded once: the schema of every request and response."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session

SERVICE = "ecr-public"


@cache
def service_model() -> Any:
    """The botocore ServiceModel (operations, shapes, metadata such as targetPrefix)."""
    return botocore.session.get_session().get_service_model(SERVICE)


@cache
def paginators() -> dict[str, Any]:
    loader = botocore.session.get_session().get_component("data_loader")
    return dict(loader.load_service_model(SERVICE, "paginators-1")["pagination"])


def target_prefix() -> str:
    return str(service_model().metadata["targetPrefix"])


def operation_names() -> list[str]:
    return list(service_model().operation_names)
