//! Evidence for auditors: the transparency log (RFC 9162 Merkle tree, C2SP signed checkpoints and
//! proofs), the DA/T 70 four-property checks, and virus scanning.

pub mod antivirus;
pub mod checks;
pub mod log;
pub mod merkle;
pub mod note;
pub mod recorder;
pub mod trail;
