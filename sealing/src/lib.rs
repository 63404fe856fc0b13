//! Envelope encryption for INFT agents.
