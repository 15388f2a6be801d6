//! End-to-end test target `real_clients`: being written.
