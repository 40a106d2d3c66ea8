//! Integration tests: one binary, one module per area.

mod analyze_wechat;
mod bodies;
mod bounded;
mod cli;
mod cli_analyze;
mod cli_filters;
mod common;
mod conformance;
mod docs;
mod fit;
mod http;
mod mars;
mod midstream;
mod net;
mod net_access;
mod net_fault;
mod net_large;
mod net_limits;
mod net_short;
mod net_store;
mod net_web;
mod packets;
mod prefixes;
mod profiles;
mod reassembly_model;
mod replay;
mod replay_http;
mod replay_mock;
mod roles;
#[cfg(feature = "live")]
mod sniff;
mod synth_mix;
mod tunnels;
mod web_server;
mod web_session;
mod wechat_crypto;
