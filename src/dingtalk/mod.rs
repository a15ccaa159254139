//! The DingTalk wire (docs/dingtalk-protocol.md): how requests are signed (`sign`), what DingTalk
//! sends us (`inbound`), what we send it (`payload`), how its answers are classified (`errors`)
//! and the OpenAPI client (`api`). No HTTP server and no database here: routes live in `http/`,
//! persistence in `store/`, so every quirk is unit-tested against the reference's vectors.

pub mod inbound;
pub mod sign;
