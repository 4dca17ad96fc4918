//! The integration tests, one binary (it links once): each module is a user's view of one
//! capability, over real HTTP, the real binary, real PostgreSQL or SQLite and real files.

mod architecture;
mod common;

mod api;
mod checks;
mod cli;
mod console;
mod digitised;
mod disposal;
mod filing;
mod fixity;
mod fuzz;
mod hardening;
mod keys;
mod log;
mod openapi;
mod s3;
mod schema;
mod sm2;
mod trail;
mod transfer;
mod upgrade;
