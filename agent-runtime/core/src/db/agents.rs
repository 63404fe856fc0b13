//! The `agents` table.

use alloy::primitives::{Address, B256, U256};
use serde_json::Value;

use super::{
    Db, DbError, addr_text, b256_text, from_i64, now_ms, parse_addr, parse_b256, parse_json,
    parse_u256, to_i64, u256_text,
};

const TABLE: &str = "agents";

/// Lifecycle state of an agent in this runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AgentStatus {
    /// Runs when asked to.
    Active,
    /// Stopped by its owner for now.
    Paused,
    /// Stopped for good on this runtime.
    Stopped,
    /// The token moved to another owner; this runtime may no longer run it.
    Transferred,
}

impl AgentStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Transferred => "transferred",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "active" => Self::Active,
            "paused" => Self::Paused,
            "stopped" => Self::Stopped,
            "transferred" => Self::Transferred,
            other => {
                return Err(DbError::Corrupt {
                    table: TABLE,
                    column: "status",
                    detail: format!("unknown status {other:?}"),
                });
            }
        })
    }
}

/// An agent as the runtime knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The INFT (ERC-721) contract.
    pub inft_contract: Address,
    /// The token id.
    pub token_id: U256,
    /// The `ActionLog` contract its actions go to.
    pub action_log: Address,
    /// The agent's own address (its key signs the action records).
    pub agent_address: Address,
    /// Hash of the plaintext model weights.
    pub model_hash: B256,
    /// Agent configuration (a JSON document).
    pub config: Value,
    /// Lifecycle state.
    pub status: AgentStatus,
}

/// An agent row with its timestamps.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRow {
    /// The agent.
    pub agent: Agent,
    /// When the row was first inserted (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When the row last changed (ms since the Unix epoch).
    pub updated_at_ms: u64,
}

#[derive(sqlx::FromRow)]
struct Raw {
    chain_id: i64,
    inft_contract: String,
    token_id: String,
    action_log: String,
    agent_address: String,
    model_hash: String,
    config: String,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl Raw {
    fn decode(self) -> Result<AgentRow, DbError> {
        Ok(AgentRow {
            agent: Agent {
                chain_id: from_i64(TABLE, "chain_id", self.chain_id)?,
                inft_contract: parse_addr(TABLE, "inft_contract", &self.inft_contract)?,
                token_id: parse_u256(TABLE, "token_id", &self.token_id)?,
                action_log: parse_addr(TABLE, "action_log", &self.action_log)?,
                agent_address: parse_addr(TABLE, "agent_address", &self.agent_address)?,
                model_hash: parse_b256(TABLE, "model_hash", &self.model_hash)?,
                config: parse_json(TABLE, "config", &self.config)?,
                status: AgentStatus::parse(&self.status)?,
            },
            created_at_ms: from_i64(TABLE, "created_at", self.created_at)?,
            updated_at_ms: from_i64(TABLE, "updated_at", self.updated_at)?,
        })
    }
}

const COLUMNS: &str = "chain_id, inft_contract, token_id, action_log, agent_address, model_hash, config, status, created_at, updated_at";

impl Db {
    /// Inserts an agent, or updates every field of the existing row for the same token
    /// (e.g. after a transfer rotated its agent key).
    pub async fn upsert_agent(&self, agent: &Agent) -> Result<(), DbError> {
        let now = to_i64("now", now_ms())?;
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO agents (chain_id, inft_contract, token_id, action_log, agent_address, model_hash, config, status, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                 ON CONFLICT (chain_id, inft_contract, token_id) DO UPDATE SET
                    action_log = excluded.action_log,
                    agent_address = excluded.agent_address,
                    model_hash = excluded.model_hash,
                    config = excluded.config,
                    status = excluded.status,
                    updated_at = excluded.updated_at",
            )
            .bind(to_i64("chain_id", agent.chain_id)?)
            .bind(addr_text(&agent.inft_contract))
            .bind(u256_text(&agent.token_id))
            .bind(addr_text(&agent.action_log))
            .bind(addr_text(&agent.agent_address))
            .bind(b256_text(&agent.model_hash))
            .bind(agent.config.to_string())
            .bind(agent.status.as_str())
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The agent of a token, if known.
    pub async fn agent(
        &self,
        chain_id: u64,
        inft_contract: Address,
        token_id: U256,
    ) -> Result<Option<AgentRow>, DbError> {
        let row: Option<Raw> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM agents WHERE chain_id = $1 AND inft_contract = $2 AND token_id = $3"
            )))
            .bind(to_i64("chain_id", chain_id)?)
            .bind(addr_text(&inft_contract))
            .bind(u256_text(&token_id))
            .fetch_optional(pool)
            .await
        })?;
        row.map(Raw::decode).transpose()
    }

    /// Every known agent, ordered by chain, contract and token id.
    pub async fn agents(&self) -> Result<Vec<AgentRow>, DbError> {
        let rows: Vec<Raw> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM agents ORDER BY chain_id, inft_contract, token_id"
            )))
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(Raw::decode).collect()
    }

    /// Sets an agent's status; returns whether the agent exists.
    pub async fn set_agent_status(
        &self,
        chain_id: u64,
        inft_contract: Address,
        token_id: U256,
        status: AgentStatus,
    ) -> Result<bool, DbError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE agents SET status = $1, updated_at = $2
                 WHERE chain_id = $3 AND inft_contract = $4 AND token_id = $5",
            )
            .bind(status.as_str())
            .bind(to_i64("now", now_ms())?)
            .bind(to_i64("chain_id", chain_id)?)
            .bind(addr_text(&inft_contract))
            .bind(u256_text(&token_id))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done > 0)
    }
}
