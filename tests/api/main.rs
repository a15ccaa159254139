//! The one integration-test binary: each module drives the real code through its public API or
//! the built `tiaochu` command, with fixtures from `tests/fixtures/`.

mod calendar;
mod cli;
mod engine;
mod http_callback;
mod parse_cases;
mod store;
mod support;
mod workflow;
