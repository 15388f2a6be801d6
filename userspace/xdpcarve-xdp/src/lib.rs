//! Live capture: being written.
