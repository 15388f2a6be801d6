//! End-to-end test target `bad_input`: being written.
