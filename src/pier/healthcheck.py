"""`python -m pier.healthcheck`: exit 0 if the pier serving here answers GET /healthz with 200, else 1.

The container image's HEALTHCHECK (it has no curl): the standard library only, and no configuration is
loaded, so it costs little and never writes. It follows PIER_PORT (default 5000) and PIER_HOST (a
wildcard address such as 0.0.0.0 is asked on loopback), and speaks HTTPS when PIER_TLS_CERT is set,
without checking the certificate, which names the public host, not loopback: liveness is the question.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def url(env: Mapping[str, str] = os.environ) -> str:
    host = env.get("PIER_HOST", "").strip()
    if host in WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    scheme = "https" if env.get("PIER_TLS_CERT") else "http"
    return f"{scheme}://{host}:{env.get('PIER_PORT') or '5000'}/healthz"


def main() -> int:
    target = url()
    context = ssl._create_unverified_context() if target.startswith("https") else None
    try:
        with urllib.request.urlopen(target, timeout=4, context=context) as response:
            return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError) as error:
        print(f"pier healthcheck: {target}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
