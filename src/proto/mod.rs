//! Protocol dissectors, all sans-IO and incremental: WeChat long-link
//! frames, MMTLS records, the short-link body layout and business packets.

pub mod business;
pub mod commands;
pub mod h2;
pub mod http;
pub mod keylog;
pub mod longlink;
pub mod mmtls;
pub mod shortlink;
pub mod tls;
pub mod web;
