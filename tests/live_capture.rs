//! End-to-end test target `live_capture`: being written.
