"""Pull-through caches at work: the clients of the upstream registries, and the fetches in progress.

core/pullthrough.py decides (rules, freshness, limits, what is stored); this package talks to the
upstreams on the event loop (upstream.py), resolves manifests (manifests.py) and fetches blobs into the
store (blobs.py). The /v2/ door (oci/pullthrough.py) answers clients with what they return. One
PullThrough per process, made when the app starts and closed when it stops.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pier.core.context import Core
from pier.core.pullthrough import Rule
from pier.pullthrough.blobs import Fetches
from pier.pullthrough.manifests import SingleFlight
from pier.pullthrough.upstream import Upstream


class PullThrough:
    def __init__(self, core: Core, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.core = core
        self._upstreams = {
            (account_id, rule.prefix): Upstream(rule, env) for account_id, rule in core.pull_through.all()
        }
        self.fetches = Fetches()
        self.manifests = SingleFlight()

    def upstream(self, registry_id: str, rule: Rule) -> Upstream:
        return self._upstreams[(registry_id, rule.prefix)]

    async def close(self) -> None:
        await self.fetches.close()
        for upstream in self._upstreams.values():
            await upstream.close()
