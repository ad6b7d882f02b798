//! SyncScript Vault: shared vaults of sources with per-vault roles and real-time updates.
pub mod api;
pub mod bus;
pub mod cli;
pub mod cluster;
pub mod db;
pub mod domain;
pub mod drain;
pub mod error;
pub mod memory;
pub mod metrics;
pub mod pages;
pub mod realtime;
pub mod security;
pub mod seed;
pub mod serve;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;

/// The CPUs this process may run on (its affinity or container quota), 1 if the system cannot
/// tell: the runtime's worker threads, and what sizes per-thread resources to match them.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
