"""The PostgreSQL backend (psycopg 3): many app servers, one database.

``_store`` is the store, built on ``_connecting`` (its connections, and whether the ledger
exists yet) and ``_appending`` (its append drivers); ``_plans`` its transactions, written once
for the sync and the async driver; ``_sql`` every statement and the schema's migrations;
``_url``, ``_pools``, ``_tail``, ``_schema`` and ``_auditing`` the connection, pooling,
LISTEN/NOTIFY tailing, setup and ``verify``.

Same contract, tables and encodings as the SQLite backend; psycopg 3 with a connection pool per
process (and an async pool per event loop for the native ``a``-methods).

Ordering without a store-wide lock. An append's events take their positions from its own
transaction id: ``pg_current_xact_id() << 20`` plus the event's index (up to 2**20 events per
append). Every statement that reads the log in position order (``read_all``, ``subscribe``,
``last_position``) returns only positions below ``pg_snapshot_xmin(pg_current_snapshot()) <<
20``, the horizon: xmin is the oldest transaction still running when the statement's snapshot
was taken. That is safe, by two facts PostgreSQL guarantees. A transaction id below xmin
belongs to a transaction that has ended, so a position below the horizon is either committed
and visible in the snapshot, or never will be. Any transaction that can still commit has an id
of at least xmin, so every position it writes is at or above the horizon. A reader that has
seen position p has therefore seen every position below p that will ever exist, and
``read_all(after_position=p)`` can never miss a later commit. The price: a transaction that
holds an id for long (of any application, on any database of the server) holds back what
readers see until it ends; appends themselves are short.

Within a stream, an advisory lock on the stream (which assigns no transaction id) is taken
before the transaction id: a later append to a stream always has a newer id than the one
before it, so positions grow with versions. Optimistic concurrency is checked under that lock,
with ``(stream_id, version)`` unique as a backstop. Appends to different streams share no lock
or row, so their commits overlap and PostgreSQL flushes them to disk together.

Projections are written in the append's transaction; ``streams.projected_version`` is each
stream's checkpoint (behind only after appends by a ``projections=False`` store).
"""

from __future__ import annotations

from chatledger.eventstore.postgres._store import PostgresStore

__all__ = ["PostgresStore"]
