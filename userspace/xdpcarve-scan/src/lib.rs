//! What happens to a file of interest after it is hashed: its bytes kept in a store while they
//! stream ([`store`]), and the file handed to its type's chain of scanners ([`pipeline`],
//! [`scanner`]) whose verdicts come back as logs, alerts and actions ([`service`]).
//!
//! ```text
//! workers ─ StoreChunk (bounded, never waited for) ─> store thread: .tmp/<id> ─> <sha256[0..2]>/<sha256>
//! egress  ─ Scanning::offer (bounded queue) ─> chain task: store.ready ─> scanner 1 ─> scanner 2 ...
//!             └─ record back (verdicts) <─ scans log, alerts log, action hook, retention
//! ```
//!
//! Nothing here runs on a worker but the queue push, and nothing blocks the egress thread: chains
//! are tasks on its runtime, each scanner bounded by its concurrency and timeout, the queue by
//! `[scan] queue`; a file that finds it full is logged `skipped_queue_full` and goes on.

#![forbid(unsafe_code)]

pub mod config;
pub mod pipeline;
pub mod scanner;
pub mod service;
pub mod store;

pub use config::{Keep, ScanConfig};
pub use pipeline::MimeMatcher;
pub use service::{Offer, ScanPlan, ScanSetupError, ScanSummary, Scanning};
pub use store::{Store, StoreError, StoreSettings};
