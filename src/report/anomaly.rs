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

/// Capped per reassembly anomaly kind in the `flows` sink.
impl super::Kinded for AnomalyRecord {
    type Kind = &'static str;
    fn kind(&self) -> &'static str {
        self.anomaly.kind()
    }
}
