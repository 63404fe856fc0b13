-- Fleets: several `inft serve` nodes share one database; each agent is leased to one node at a
-- time. Times here are milliseconds since the Unix epoch on the DATABASE's clock (SQLite: the
-- machine holding the file; PostgreSQL: the server's), never a node's, so node clock skew does
-- not move a lease.

-- One row per lease key (e.g. an agent). The row is never deleted: `fence` only grows, so a
-- fencing token is never handed out twice for a key. A lease is held while expires_at > now;
-- released leases have expires_at = 0.
CREATE TABLE leases (
    key             TEXT    NOT NULL PRIMARY KEY,
    holder          TEXT    NOT NULL,
    fence           INTEGER NOT NULL CHECK (fence >= 1),
    expires_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- Live nodes of a fleet: each node upserts its row every heartbeat; rows older than the lease
-- time are dead nodes (a clean shutdown deletes its row).
CREATE TABLE fleet_nodes (
    node_id         TEXT    NOT NULL PRIMARY KEY,
    heartbeat_at    INTEGER NOT NULL
);

-- Daily step budgets count a log's records since a time.
CREATE INDEX action_records_by_time ON action_records (chain_id, action_log, token_id, created_at);
