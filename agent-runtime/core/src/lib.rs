#![doc = include_str!("../README.md")]

pub mod audit;
pub mod blobstore;
pub mod db;
pub mod error;
pub mod indexer;
pub mod lifecycle;
pub mod memory;
pub mod outbox;
pub mod pipeline;
pub mod provenance;
pub mod record;
pub mod royalties;
pub mod token;
pub mod transfer;
pub mod wallet;
