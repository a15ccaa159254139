//! The attack suite (docs/security.md): every try a hostile network can make on a public surface,
//! one test per attack, named for it. Each asserts the status answered, that nothing was stored,
//! nothing was sent and no state changed.
mod card;
mod flood;
mod low;
mod markdown;
mod network;
