//! Tracing setup: human-readable lines in development, JSON in production.
use tracing_subscriber::{EnvFilter, fmt};

use crate::settings::{LogFormat, LogSettings};

pub fn init(cfg: &LogSettings) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
