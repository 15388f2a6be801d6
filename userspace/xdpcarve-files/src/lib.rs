//! File analysis: everything between "a parser found a file" and "a finished file record".
//! Streaming hashes and the bounded sniff buffer ([`analyzer`]), content sniffing ([`sniff`]) and
//! transfer decoders ([`decode`]), and the hash threads large files can be handed to ([`offload`]).
//! Nothing here does I/O; bytes in, records out.

#![forbid(unsafe_code)]

pub mod analyzer;
pub mod decode;
pub mod offload;
pub mod sniff;

pub use analyzer::{hex, FileAnalyzer, FileEnd};
pub use offload::{HashPool, QueueFull};
