//! The integration suite: the real app on port 0, a fresh database per test (a temporary
//! SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set), real HTTP and
//! real Socket.IO clients.
mod auth;
mod conformance;
mod delivery;
mod direct_writes;
mod drain;
mod edges;
mod foundation;
mod helpers;
mod history;
mod join_reads;
mod members;
mod metrics;
mod multinode;
mod openapi;
mod pages;
mod realtime;
mod serving;
mod session_cache;
mod shutdown;
mod source_pages;
mod sources;
mod vaults;
