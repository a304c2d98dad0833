//! One vivace process: configuration, the modules of `-target=all` wired together, the servers,
//! and an orderly shutdown.
//!
//! Start-up order: parse and validate the config (nothing listens if it is wrong), open the
//! write-ahead log and replay it into the live-store, bind every listener (a port in use is an
//! error before anything is served), then serve. Shutdown (SIGTERM/SIGINT): `/ready` turns 503,
//! listeners stop accepting, in-flight requests finish (bounded by
//! `server.graceful_shutdown_timeout`), the log is fsynced and closed, and the process exits 0.

pub mod auth;
pub mod config;
mod metrics;
pub mod readonly;
mod server;
mod sources;

pub use config::{Config, ConfigError};
pub use server::{App, AppError, run};
