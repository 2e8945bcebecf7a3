"""corral.analytics: operational numbers for tuning a rollout (issue 15).

``corral stats`` and ``corral dashboard`` read the same events as ``corral log`` (one machine's
journal today; the server's store plugs in through ``EventSource``). Events are folded into an
hourly rollup database next to the journal, maintained incrementally from a cursor, so a query
reads rollup rows instead of every event. Only corral's own records (``corral.origin =
pipeline``) count as decisions; what agents report or export is counted apart as claims.

Public surface::

    store = RollupStore.open(rollup_path(journal))
    store.refresh(JournalSource(journal), settings)      # fold in what is new since the cursor
    stats = compute(store, Query(since_ns=..., by="team"), settings)   # the JSON of `corral stats`
"""

from corral.analytics.query import Query, compute, drill
from corral.analytics.rollup import RollupStore, Settings, rollup_path
from corral.analytics.source import EventSource, JournalSource

__all__ = ["EventSource", "JournalSource", "Query", "RollupStore", "Settings", "compute",
           "drill", "rollup_path"]
