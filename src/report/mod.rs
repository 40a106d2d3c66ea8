//! Output: the sink that turns flow-table events into connection records,
//! and the printer that renders every command's records (table, JSON,
//! NDJSON), the summary line and anomaly records. Tables fit the terminal
//! ([`fit`], drawn by `grid`); JSON writes unsafe integers as strings
//! ([`json`]); [`View`] says how tables show widths, times and durations.

mod anomaly;
pub mod bounded;
pub mod fit;
pub mod flows;
mod grid;
pub mod html;
pub mod json;
mod lifecycle;
pub mod lua;
mod messages;
pub mod parquet;
pub mod printer;
mod records;
mod replay;
pub mod spill;
mod summary;
pub mod table;
pub mod view;

pub use anomaly::AnomalyRecord;
pub use bounded::{Bounded, Kinded, Overflow, DEFAULT_MAX_EXAMPLES};
pub use flows::{DirRecord, FlowRecord, FlowRow, FlowsSink, TunnelRecord};
pub use grid::Grid;
pub use printer::{printer, spilling, streaming, Format, Printer, Record};
pub use records::SyncReport;
pub use spill::Spill;
pub use summary::summary;
pub use view::View;
