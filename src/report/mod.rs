//! Output: the sink that turns flow-table events into connection records,
//! and the printer that renders every command's records (table, JSON,
//! NDJSON), the summary line and anomaly records. The only importer of
//! comfy-table (in [`table`]).

mod anomaly;
pub mod bounded;
pub mod flows;
mod grid;
mod messages;
pub mod printer;
mod records;
mod replay;
pub mod spill;
mod summary;
pub mod table;

pub use anomaly::AnomalyRecord;
pub use bounded::{Bounded, Kinded, Overflow, DEFAULT_MAX_EXAMPLES};
pub use flows::{DirRecord, FlowRecord, FlowRow, FlowsSink};
pub use printer::{printer, spilling, streaming, Format, Printer, Record, Row};
pub use spill::Spill;
pub use summary::summary;
