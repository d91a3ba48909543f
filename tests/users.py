"""IAM users for tests: made with the real `pier users` CLI against a server's database, and clients
that sign as them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import OWNER, client
from tests.server import Account, PierServer

BOUND = 10.0  # seconds: the revocation bound the README states (core/users.py MAX_AGE_SECONDS)


def pier_users(server: PierServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`pier users <args>` against the server's data dir and config (and so its database); not checked."""
    command = [sys.executable, "-m", "pier", "users", *args, "--data-dir", str(server.data_dir)]
    if server.config_file is not None:
        command += ["--config", str(server.config_file)]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=120, env={**os.environ, **server.env}
    )


def policy_file(tmp_path: Path, *statements: dict[str, Any]) -> Path:
    path = tmp_path / f"policy-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
    return path


def create_user(
    server: PierServer, tmp_path: Path, *statements: dict[str, Any], account: str = OWNER.id, name: str = ""
) -> tuple[str, Account]:
    """(the user's ARN, its credentials as an Account to sign with); a unique name unless one is given."""
    name = name or f"user-{uuid.uuid4().hex[:10]}"
    args = ["create", account, name, "--json"]
    if statements:
        args += ["--policy", str(policy_file(tmp_path, *statements))]
    done = pier_users(server, *args)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert set(created) == {"arn", "accessKeyId", "secretAccessKey"}
    return created["arn"], Account(account, "", created["accessKeyId"], created["secretAccessKey"])


def user_client(server: PierServer, keys: Account) -> Any:
    return client(server, keys)


def allow(actions: str | list[str], resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource, **extra}


def deny(actions: str | list[str], resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": actions, "Resource": resource, **extra}


def repository_arn(name: str, account: str = OWNER.id) -> str:
    return f"arn:aws:ecr-public::{account}:repository/{name}"


LOGIN = allow(["ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"])
PUSH = [
    "ecr-public:BatchCheckLayerAvailability",
    "ecr-public:InitiateLayerUpload",
    "ecr-public:UploadLayerPart",
    "ecr-public:CompleteLayerUpload",
    "ecr-public:PutImage",
]


def access_denied(user_arn: str, action: str, resource: str, why: str = "no identity") -> str:
    """AccessDeniedException's message, in AWS's words."""
    reasons = {
        "no identity": f"because no identity-based policy allows the {action} action",
        "no resource": f"because no resource-based policy allows the {action} action",
        "identity deny": "with an explicit deny in an identity-based policy",
        "resource deny": "with an explicit deny in a resource-based policy",
    }
    return f"User: {user_arn} is not authorized to perform: {action} on resource: {resource} {reasons[why]}"


def within_bound(check: Callable[[], bool], streak: int = 12, limit: float = BOUND) -> float:
    """Poll `check` until it holds `streak` times in a row (new connections each time, so every worker
    process answers some); the seconds until the streak began, which must be within `limit`."""
    started = time.monotonic()
    first: float | None = None
    held = 0
    while True:
        now = time.monotonic()
        if check():
            first = now if first is None else first
            held += 1
            if held >= streak:
                break
        else:
            first, held = None, 0
            assert now - started <= limit + 5, f"still not in effect after {now - started:.1f} s"
            time.sleep(0.2)
    took = (first or started) - started
    assert took <= limit, f"took {took:.1f} s, more than the {limit:.0f} s bound"
    return took
