//! Integration tests: one binary, one module per area.

mod bodies;
mod cli;
mod common;
mod conformance;
mod prefixes;
mod reassembly_model;
