//! Egress: being written.
