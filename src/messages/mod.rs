//! Chinese text users see, rendered from structured data. Nothing else in the crate writes
//! user-facing sentences.
pub mod application;
pub mod card;
pub mod escape;
pub mod help;
pub mod notify;
pub mod similar;
pub mod timeline;
