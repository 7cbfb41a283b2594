//! Snowflake-style gift IDs: a 64-bit layout ([`layout`]), a generator that stays correct
//! when the wall clock misbehaves ([`generator`]), and the Maelstrom node ([`node`]) and HTTP
//! service ([`http`]) that serve it.

pub mod generator;
pub mod http;
pub mod layout;
pub mod node;
