//! Output: sinks that turn flow-table events into records, and the
//! renderers for them (table, JSON, NDJSON).

pub mod flows;
pub mod table;

pub use flows::{DirRecord, FlowRecord, FlowsSink};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    Ndjson,
}
