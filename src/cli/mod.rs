//! The command line: one subcommand per file. `main.rs` only parses arguments and calls here.
