//! tiaochu (调处): the Ganzhou District 12345 hotline's joint-mediation mechanism for difficult
//! work orders, run inside DingTalk. The pure core (`parse`, `calendar`, `workflow`) knows nothing
//! of the wire or the database; `store` owns every line of SQL; `cli` is the thin entry.
//!
//! # Layout
//!
//! The modules below are declared by layer, lowest first; a module uses only its own layer and
//! the ones above it in this list (docs/architecture.md → Layers draws the same picture, and
//! → The path of one message names the functions a message passes through in order).
//!
//! - **Pure core** — values in, values out; no I/O, no wall clock:
//!   [`domain`] (the identifiers as types: ticket and case numbers, unit names, person ids),
//!   [`hex`] (lowercase hex of digests and tags),
//!   [`calendar`] (working days, holidays), [`roster`] (units, people, roles),
//!   [`parse`] (pasted applications and text commands), [`workflow`] (the mechanism as one
//!   `transition` function, its clocks and invariants), [`similar`] (tokens and ranking of past
//!   cases), [`messages`] (every Chinese text and card people read), [`settings`] (the typed
//!   configuration).
//! - **Storage** — [`store`] (every line of SQL: SQLite in WAL mode behind one writer thread),
//!   [`card_secrets`] (the per-card HMAC key kept there).
//! - **Decisions** — the core applied in ONE store transaction each: [`engine`] (find the case,
//!   run `transition`, write case, events, timers and outbox rows), [`casebook`] (the similar-case
//!   index kept in step inside the engine's transaction), [`dispatch`] (rendered messages → the
//!   exact outbox bytes for the configured mode), [`clock_upkeep`] (firing a case's due timers, the
//!   hotline digest, recomputing deadlines after a holiday-data load), [`onboarding`],
//!   [`quarantine`], [`report`] (monthly statistics and notices from the stored events),
//!   [`dashboard_access`] (who may read the dashboard, one-time login links).
//! - **Wire** — [`dingtalk`] (signatures, callback envelopes, OpenAPI calls and their errors,
//!   the Stream client), [`card_callback`] (a card tap → the same input as its text command), [`http`]
//!   (axum routes: robot and card callbacks, sandbox, dashboard, health, metrics).
//! - **Loops** — one public step each plus a `run` loop: [`inbox`] (stored messages → decisions),
//!   [`scheduler`] (due timers), [`outbox`] (sends, within DingTalk's limits),
//!   [`roster_sync`] (the address book).
//! - **Process** — [`clock`] (the only reader of the wall clock), [`metrics`] (counters and their
//!   exposition), [`app`] (wires the loops and the router onto a bound listener), [`cli`] (one
//!   file per subcommand).
//!
//! Known back-edges, left on purpose: `parse` builds `workflow::Input` while `workflow` builds
//! its `Application` from the parser's report (`parse::Application`, the `parse --json` contract)
//! and shares its `Category` (one vocabulary for the two halves of the core); and `casebook` is
//! the engine's own helper and decodes cases through it.

// Pure core.
pub mod calendar;
pub mod domain;
pub mod hex;
pub mod messages;
pub mod parse;
pub mod roster;
pub mod settings;
pub mod similar;
pub mod workflow;

// Storage.
pub mod card_secrets;
pub mod store;

// Decisions.
pub mod casebook;
pub mod clock_upkeep;
pub mod dashboard_access;
pub mod dispatch;
pub mod engine;
pub mod onboarding;
pub mod quarantine;
pub mod report;

// Wire.
pub mod card_callback;
pub mod dingtalk;
pub mod http;

// Loops.
pub mod inbox;
pub mod outbox;
pub mod roster_sync;
pub mod scheduler;

// Process.
pub mod app;
pub mod cli;
pub mod clock;
pub mod metrics;
