-- inft runtime database, version 1 (PostgreSQL).
--
-- The same schema as ../0001_init.sql (SQLite), version for version: natural keys, TEXT for
-- addresses and hashes ('0x' + lowercase hex; uint256 token ids fixed-width so they sort),
-- BIGINT for numbers that fit in 63 bits and for milliseconds since the Unix epoch, TEXT
-- holding JSON for documents. Keep the two directories in step: a migration added to one is
-- added to the other with the same version.
--
-- A token is (chain_id, inft_contract, token_id); a token's action log is
-- (chain_id, action_log, token_id), where action_log is the ActionLog contract address.

-- Agents this runtime has minted, loaded or run.
CREATE TABLE agents (
    chain_id        BIGINT  NOT NULL,
    inft_contract   TEXT    NOT NULL,
    token_id        TEXT    NOT NULL,
    action_log      TEXT    NOT NULL,
    -- the agent's own key, registered on chain; it signs the action records
    agent_address   TEXT    NOT NULL,
    -- hash of the plaintext GGUF weights (shared-model cache key)
    model_hash      TEXT    NOT NULL,
    -- agent configuration (JSON object)
    config          TEXT    NOT NULL DEFAULT '{}',
    status          TEXT    NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'paused', 'stopped', 'transferred')),
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (chain_id, inft_contract, token_id)
);

-- Every action record, exactly as hashed. Rows are immutable once inserted (except blob_uri).
CREATE TABLE action_records (
    chain_id        BIGINT  NOT NULL,
    action_log      TEXT    NOT NULL,
    token_id        TEXT    NOT NULL,
    seq             BIGINT  NOT NULL CHECK (seq >= 0),
    -- keccak256("inft/v1/action-record" || record_json): the hash logged on chain
    record_hash     TEXT    NOT NULL UNIQUE,
    prev_hash       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    -- the canonical JSON of the record: the exact bytes hashed
    record_json     TEXT    NOT NULL,
    -- 65-byte signature r || s || v by the agent key ('0x' + 130 hex)
    signature       TEXT    NOT NULL,
    -- the address the signature recovered to when the row was inserted
    signer          TEXT    NOT NULL,
    -- where the signed record envelope was also stored in the blob store, if it was
    blob_uri        TEXT,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (chain_id, action_log, token_id, seq)
);

-- One outbox entry per action record: inserted in the same transaction as the record, before
-- anything is sent. pending -> sent (a logActions tx carrying it was broadcast) -> confirmed
-- (the chain holds the same hash at this seq). Retries keep the row and count attempts.
CREATE TABLE outbox (
    chain_id        BIGINT  NOT NULL,
    action_log      TEXT    NOT NULL,
    token_id        TEXT    NOT NULL,
    seq             BIGINT  NOT NULL,
    record_hash     TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'confirmed')),
    tx_hash         TEXT,
    block_number    BIGINT,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    sent_at         BIGINT,
    confirmed_at    BIGINT,
    PRIMARY KEY (chain_id, action_log, token_id, seq),
    FOREIGN KEY (chain_id, action_log, token_id, seq)
        REFERENCES action_records (chain_id, action_log, token_id, seq)
);
CREATE INDEX outbox_unconfirmed ON outbox (chain_id, action_log, token_id, seq)
    WHERE state <> 'confirmed';

-- Decoded contract events, indexed for audits. Keyed by position in the chain; block_hash
-- detects reorganisations (rows from a replaced block are deleted and re-indexed).
CREATE TABLE chain_events (
    chain_id        BIGINT  NOT NULL,
    block_number    BIGINT  NOT NULL,
    log_index       BIGINT  NOT NULL,
    block_hash      TEXT    NOT NULL,
    tx_hash         TEXT    NOT NULL,
    contract        TEXT    NOT NULL,
    -- NULL for events that are not about one token
    token_id        TEXT,
    -- event name, e.g. 'ActionsLogged', 'Transfer', 'AgentRegistered'
    kind            TEXT    NOT NULL,
    -- the decoded event (JSON object)
    payload         TEXT    NOT NULL,
    PRIMARY KEY (chain_id, block_number, log_index)
);
CREATE INDEX chain_events_token ON chain_events (chain_id, contract, token_id, block_number, log_index);

-- How far the event indexer got, per contract.
CREATE TABLE chain_cursors (
    chain_id        BIGINT  NOT NULL,
    contract        TEXT    NOT NULL,
    -- the next block to index
    next_block      BIGINT  NOT NULL,
    -- hash of block next_block - 1, to detect a reorganisation under the cursor
    last_block_hash TEXT,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (chain_id, contract)
);

-- Nonce manager: the next nonce this runtime will use per account. Never lowered.
CREATE TABLE account_nonces (
    chain_id        BIGINT  NOT NULL,
    address         TEXT    NOT NULL,
    next_nonce      BIGINT  NOT NULL CHECK (next_nonce >= 0),
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (chain_id, address)
);

-- Every signed transaction, persisted BEFORE it is broadcast, so a restart rebroadcasts or
-- replaces the same transaction instead of signing a second one. Several rows share a nonce
-- when a stuck transaction is repriced; at most one of them is ever mined.
CREATE TABLE signed_txs (
    chain_id                  BIGINT  NOT NULL,
    tx_hash                   TEXT    NOT NULL,
    sender                    TEXT    NOT NULL,
    nonce                     BIGINT  NOT NULL CHECK (nonce >= 0),
    -- EIP-2718 encoded signed transaction ('0x' + hex)
    raw_tx                    TEXT    NOT NULL,
    -- what the transaction is for, e.g. 'log_actions', 'trade', 'sweep'
    purpose                   TEXT    NOT NULL,
    -- the thing it does, for idempotence checks (e.g. a trade id, 'outbox:<first seq>-<last seq>')
    reference                 TEXT,
    -- fee caps in wei (decimal text: u128 does not fit a BIGINT)
    max_fee_per_gas           TEXT,
    max_priority_fee_per_gas  TEXT,
    state                     TEXT    NOT NULL DEFAULT 'signed'
                              CHECK (state IN ('signed', 'broadcast', 'mined', 'failed', 'replaced', 'dropped')),
    block_number              BIGINT,
    created_at                BIGINT  NOT NULL,
    updated_at                BIGINT  NOT NULL,
    PRIMARY KEY (chain_id, tx_hash)
);
CREATE INDEX signed_txs_by_nonce ON signed_txs (chain_id, sender, nonce);
CREATE INDEX signed_txs_by_reference ON signed_txs (chain_id, purpose, reference);
