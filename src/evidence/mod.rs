//! Evidence for auditors: the transparency log (RFC 9162 Merkle tree, C2SP signed checkpoints and
//! proofs).

pub mod log;
pub mod merkle;
pub mod note;
