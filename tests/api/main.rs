//! The one integration-test binary: each module drives the real code through its public API or
//! the built `tiaochu` command, with fixtures from `tests/fixtures/`.

mod calendar;
mod cli;
mod commands;
mod conversation;
mod dingtalk_case;
mod engine;
mod fake_dingtalk;
mod fake_stream;
mod http_callback;
mod messages;
mod outbound;
mod parse_cases;
mod store;
mod stream;
mod support;
mod workflow;
