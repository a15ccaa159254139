//! The DingTalk wire (docs/dingtalk-protocol.md): how requests are signed (`sign`), what DingTalk
//! sends us (`inbound`), what we send it (`payload`), how its answers are classified (`errors`)
//! and the OpenAPI client (`api`), and the Stream-mode WebSocket client (`stream`). No HTTP server
//! and no database here: routes live in `http/`, persistence in `store/`, so every quirk is
//! unit-tested against the reference's vectors.

pub mod api;
pub mod errors;
pub mod inbound;
pub mod payload;
pub mod sign;
pub mod stream;
