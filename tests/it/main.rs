//! Integration tests: one binary, one module per area.

mod analyze_wechat;
mod bodies;
mod cli;
mod cli_analyze;
mod common;
mod conformance;
mod prefixes;
mod reassembly_model;
mod wechat_crypto;
