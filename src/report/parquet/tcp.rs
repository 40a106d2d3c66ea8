//! The `tcp` table (`syncscope flows --format parquet`): one row per TCP
//! connection, as `flows` reports it (packets, bytes, gaps and hashes per
//! direction, how it ended, its tunnel). Written as connections end, a
//! batch at a time.

use std::io;
use std::path::Path;

use super::{int, name, part_name, Table, Ty, Val, Written};
use crate::report::flows::{DirRecord, FlowRow};
use crate::report::printer::Printer;

const TCP_COLUMNS: &[(&str, Ty, bool)] = &[
    ("file", Ty::Str, false),
    ("conn", Ty::I64, false),
    ("client", Ty::Str, false),
    ("server", Ty::Str, false),
    ("first_ts", Ty::Ts, false),
    ("last_ts", Ty::Ts, false),
    ("packets_c2s", Ty::I64, false),
    ("bytes_c2s", Ty::I64, false),
    ("gaps_c2s", Ty::I64, false),
    ("gap_bytes_c2s", Ty::I64, false),
    ("sha256_c2s", Ty::Str, true),
    ("packets_s2c", Ty::I64, false),
    ("bytes_s2c", Ty::I64, false),
    ("gaps_s2c", Ty::I64, false),
    ("gap_bytes_s2c", Ty::I64, false),
    ("sha256_s2c", Ty::Str, true),
    ("end", Ty::Str, false),
    ("tunnel", Ty::Str, true),
    ("tunnel_client", Ty::Str, true),
    ("tunnel_server", Ty::Str, true),
    ("tunnel_c2s_id", Ty::I64, true),
    ("tunnel_s2c_id", Ty::I64, true),
];

/// Writes `DIR/tcp/<part>` from the records `flows` prints; says what it
/// wrote on stderr at the end unless quiet.
pub struct TcpPrinter {
    table: Option<Table>,
    /// The run's input, when it read one (a record names its own file when
    /// the run reads several).
    file: String,
    quiet: bool,
}

impl TcpPrinter {
    /// Creates `dir/tcp/<part>` for a run over `files`.
    pub fn create(dir: &Path, files: &[String], quiet: bool) -> io::Result<TcpPrinter> {
        let path = dir.join("tcp").join(part_name(files));
        Ok(TcpPrinter {
            table: Some(Table::create(path, TCP_COLUMNS)?),
            file: files.first().cloned().unwrap_or_default(),
            quiet,
        })
    }

    /// Closes the file; what was written.
    pub fn close(&mut self) -> io::Result<Option<Written>> {
        self.table.take().map(Table::close).transpose()
    }
}

fn dir_cells(d: &DirRecord) -> [Val<'_>; 5] {
    [
        Val::I(int(d.packets)),
        Val::I(int(d.bytes)),
        Val::I(int(d.gaps)),
        Val::I(int(d.gap_bytes)),
        Val::S(d.sha256.as_deref()),
    ]
}

impl Printer<FlowRow> for TcpPrinter {
    fn record(&mut self, row: &FlowRow) -> io::Result<()> {
        let Some(table) = self.table.as_mut() else {
            return Err(io::Error::other("the tcp table is closed"));
        };
        let r = &row.record;
        let file = r.file.as_deref().unwrap_or(&self.file);
        let tunnel = r.tunnel.as_ref();
        let kind = tunnel.map(|t| name(t.kind));
        let mut cells = vec![
            Val::S(Some(file)),
            Val::I(int(r.id)),
            Val::S(Some(&r.client)),
            Val::S(Some(&r.server)),
            Val::T(row.first_ts),
            Val::T(row.last_ts),
        ];
        cells.extend(dir_cells(&r.c2s));
        cells.extend(dir_cells(&r.s2c));
        cells.extend([
            Val::S(Some(&r.end)),
            Val::S(kind.as_deref()),
            Val::S(tunnel.map(|t| t.client.as_str())),
            Val::S(tunnel.map(|t| t.server.as_str())),
            Val::I(tunnel.and_then(|t| t.c2s_id).map(i64::from)),
            Val::I(tunnel.and_then(|t| t.s2c_id).map(i64::from)),
        ]);
        table.push(cells)
    }

    fn end(&mut self) -> io::Result<()> {
        if let Some(w) = self.close()? {
            w.say(self.quiet);
        }
        Ok(())
    }
}
