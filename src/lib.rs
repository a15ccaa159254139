//! tiaochu (调处): the Ganzhou District 12345 hotline's joint-mediation mechanism for difficult
//! work orders, run inside DingTalk. The pure core (`parse`, `calendar`, `workflow`) knows nothing
//! of the wire or the database; `store` owns every line of SQL; `cli` is the thin entry.

pub mod app;
pub mod calendar;
pub mod card_secrets;
pub mod cards;
pub mod casebook;
pub mod cli;
pub mod clock;
pub mod clocks;
pub mod dingtalk;
pub mod dispatch;
pub mod engine;
pub mod http;
pub mod inbox;
pub mod messages;
pub mod metrics;
pub mod onboarding;
pub mod outbox;
pub mod parse;
pub mod quarantine;
pub mod report;
pub mod roster;
pub mod roster_sync;
pub mod scheduler;
pub mod settings;
pub mod similar;
pub mod store;
pub mod workflow;
