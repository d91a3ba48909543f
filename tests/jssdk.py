"""The AWS SDK for JavaScript v3 (@aws-sdk/client-ecr-public), installed once from npm into tests/js
(pinned in tests/js/package.json) for every test that drives pier from node. Tests that need it are
skipped, saying why, when node is missing or npm cannot reach its registry; any other install failure
is an error."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent / "js"
PACKAGE = "@aws-sdk/client-ecr-public"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH", "network")


def installed_js_sdk() -> Path:
    """tests/js with the SDK installed (installing it the first time), or skip."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the JavaScript SDK's tests")
    wanted = json.loads((JS / "package.json").read_text())["dependencies"][PACKAGE]
    installed = JS / "node_modules" / PACKAGE / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != wanted:
        done = subprocess.run(
            ["npm", "install", "--prefix", str(JS), "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            output = done.stdout + done.stderr
            if any(error in output for error in NETWORK_ERRORS):
                pytest.skip(f"npm could not reach its registry to install {PACKAGE}:\n{output[-2000:]}")
            raise AssertionError(f"npm install {PACKAGE} failed:\n{output}")
    return JS
