#![doc = include_str!("../README.md")]

pub mod agent;
pub mod audit;
pub mod engine;
pub mod lifecycle;
pub mod memory;
pub mod models;
pub mod testmodel;
pub mod token;

// infrastructure (runtime-infra helper)
pub mod blobstore;
pub mod db;
pub mod error;
pub mod indexer;
pub mod outbox;
pub mod pipeline;
pub mod provenance;
pub mod record;
pub mod royalties;
pub mod transfer;
pub mod wallet;
