//! Streaming transfer decoders. Each takes input in pieces of any size and appends decoded bytes
//! to a caller-owned buffer (reused between calls, so steady state allocates nothing).

pub mod base64;
pub mod inflate;
pub mod qp;
