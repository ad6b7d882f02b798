//! SyncScript Vault: shared vaults of sources with per-vault roles and real-time updates.
pub mod api;
pub mod bus;
pub mod cli;
pub mod cluster;
pub mod db;
pub mod domain;
pub mod drain;
pub mod error;
pub mod metrics;
pub mod pages;
pub mod realtime;
pub mod security;
pub mod seed;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
