//! guidang: the archive for electronic records of government-service cases.
//!
//! Layers, top to bottom (each uses only its own layer, without cycles, and those below; checked by
//! `tests/it/architecture.rs`):
//! - interfaces: `http`, `console` (the browser's pages), `cli`
//! - wiring: `app`
//! - capabilities and the package format: `ingest`, `cases`, `keys`, `retention`, `filing`,
//!   `disposal`, `fixity`, `digitised`, `versions`, `transfer`, `pipeline` (the ingest's stages),
//!   `verify`
//! - shared parts: `evidence` (log, trail, checks, the recorder), `storage`, `staging`, `auth`,
//!   `tasks`, `documents`
//! - the database: `db`
//! - leaves: `config`, `clock`, `signing`, `xml`, `problem`, `codes`, `metrics`, `telemetry`,
//!   `failpoint`

pub mod app;
pub mod auth;
pub mod cases;
pub mod cli;
pub mod clock;
pub mod codes;
pub mod config;
pub mod console;
pub mod db;
pub mod digitised;
pub mod disposal;
pub mod documents;
pub mod evidence;
pub mod failpoint;
pub mod filing;
pub mod fixity;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod pipeline;
pub mod problem;
pub mod retention;
pub mod signing;
pub mod signing_sm2;
pub mod staging;
pub mod storage;
pub mod tasks;
pub mod telemetry;
pub mod tokens;
pub mod transfer;
pub mod verify;
pub mod versions;
pub mod xml;
