//! Chinese text users see, rendered from structured data. Nothing else in the crate writes
//! user-facing sentences.
pub mod application;
