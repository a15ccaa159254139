//! The one integration-test binary: each module drives the real code through its public API or
//! the built `tiaochu` command, with fixtures from `tests/fixtures/`.

mod attacks;
mod calendar;
mod card_callbacks;
mod check_online;
mod cli;
mod clocks;
mod commands;
mod conformance_models;
mod conversation;
mod conversation_content;
mod crash;
mod dashboard;
mod dingtalk_case;
mod engine;
mod fake_dingtalk;
mod fake_stream;
mod http_callback;
mod leaders;
mod messages;
mod observability;
mod onboarding;
mod outbound;
mod parse_cases;
mod quarantine;
mod reports;
mod restore;
mod roster_sync;
mod sandbox_browser;
mod similar;
mod similar_eval;
mod store;
mod stream;
mod support;
mod throughput;
mod workflow;
