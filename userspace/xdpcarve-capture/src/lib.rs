//! Capture sources: being written.
