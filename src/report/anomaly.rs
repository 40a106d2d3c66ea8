//! Anomalies as records: what went wrong, on which connection and direction.

use crate::flow::Direction;
use crate::reassembly::Anomaly;

/// An anomaly with where it happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnomalyRecord {
    pub conn: u64,
    pub dir: Direction,
    #[serde(flatten)]
    pub anomaly: Anomaly,
}
