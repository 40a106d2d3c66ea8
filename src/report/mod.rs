//! Output: the sink that turns flow-table events into connection records,
//! and the printer that renders every command's records (table, JSON,
//! NDJSON), the summary line and anomaly records. The only importer of
//! comfy-table (in [`table`]).

mod anomaly;
pub mod bounded;
pub mod flows;
pub mod printer;
mod records;
mod summary;
pub mod table;

pub use anomaly::AnomalyRecord;
pub use bounded::{Bounded, Kinded, Overflow, DEFAULT_MAX_EXAMPLES};
pub use flows::{DirRecord, FlowRecord, FlowRow, FlowsSink};
pub use printer::{printer, streaming, Format, Printer, Record, Row};
pub use summary::summary;
