//! guidang: the archive for electronic records of government-service cases.
//!
//! The core (`archive`, `pipeline`, `db`, `verify`) knows nothing of HTTP or the command line;
//! `http` and `cli` are thin layers over it.

pub mod archive;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod codes;
pub mod config;
pub mod db;
pub mod evidence;
pub mod filing;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod problem;
pub mod retention;
pub mod telemetry;
pub mod verify;
