//! End-to-end test target `egress`: being written.
