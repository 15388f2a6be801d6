//! SMTP parser: being written.
