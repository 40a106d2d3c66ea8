//! Tables drawn a row at a time, in the same frame and padding as
//! comfy-table's `UTF8_FULL_CONDENSED` preset, fitted to the terminal by a
//! [`Layout`] (see [`super::fit`]); and [`Grid`], a whole table built in
//! memory and drawn the same way (the small tables of `analyze`, `sync`
//! and `replay`).
//!
//! Why not comfy-table: it needs every cell of every row in memory before
//! it draws anything (3 GiB for the `flows` table of a million-connection
//! SYN scan), while these rows come back one at a time from
//! [`super::spill`] once the column widths are known; and it wraps cells
//! onto more lines where these tables cut them to one. A test checks the
//! output against comfy-table's, byte for byte, when nothing is cut.

use std::fmt;
use std::io::{self, Write};

use unicode_width::UnicodeWidthStr;

use super::fit::{Col, Frame, Layout, Measure};
use super::view::View;

impl Layout {
    fn rule(&self, left: &str, fill: &str, mid: &str, right: &str) -> String {
        let pad = if self.pad { 2 } else { 0 };
        let mut line = String::from(left);
        for (i, w) in self.widths.iter().enumerate() {
            if i > 0 {
                line.push_str(mid);
            }
            line.push_str(&fill.repeat(w + pad));
        }
        line.push_str(right);
        line
    }

    /// One line of cells already cut to their columns.
    fn line<S: AsRef<str>>(&self, cells: &[S]) -> String {
        let mut line = String::new();
        match self.frame {
            Frame::Boxed => {
                let pad = if self.pad { " " } else { "" };
                line.push('│');
                for (k, w) in self.widths.iter().enumerate() {
                    if k > 0 {
                        line.push('┆');
                    }
                    let c = cells.get(k).map_or("", |c| c.as_ref());
                    line.push_str(pad);
                    line.push_str(c);
                    line.push_str(&" ".repeat(w - c.width().min(*w)));
                    line.push_str(pad);
                }
                line.push('│');
            }
            Frame::Plain => {
                for (k, w) in self.widths.iter().enumerate() {
                    if k > 0 {
                        line.push(' ');
                    }
                    let c = cells.get(k).map_or("", |c| c.as_ref());
                    let fill = " ".repeat(w - c.width().min(*w));
                    if self.fits[k] == super::fit::Fit::Keep {
                        line.push_str(&fill);
                        line.push_str(c);
                    } else {
                        line.push_str(c);
                        line.push_str(&fill);
                    }
                }
                line.truncate(line.trim_end().len());
            }
        }
        line
    }

    /// The header (on as many lines as it wraps to) and, boxed, the rules
    /// above and under it.
    pub fn head(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.frame == Frame::Boxed {
            writeln!(out, "{}", self.rule("┌", "─", "┬", "┐"))?;
        }
        for n in 0..self.head_lines() {
            let cells: Vec<&str> = self
                .heads
                .iter()
                .map(|h| h.get(n).map_or("", String::as_str))
                .collect();
            writeln!(out, "{}", self.line(&cells))?;
        }
        if self.frame == Frame::Boxed {
            writeln!(out, "{}", self.rule("╞", "═", "╪", "╡"))?;
        }
        Ok(())
    }

    /// One row (`cells` in the table's column order), each cell cut to its
    /// column.
    pub fn row<S: AsRef<str>>(&self, out: &mut dyn Write, cells: &[S]) -> io::Result<()> {
        let shown: Vec<_> = (0..self.shown.len()).map(|k| self.cell(cells, k)).collect();
        writeln!(out, "{}", self.line(&shown))
    }

    /// The bottom rule (without a final newline after it, as comfy-table),
    /// then the line naming hidden columns, if any.
    pub fn foot(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.frame == Frame::Boxed {
            write!(out, "{}", self.rule("└", "─", "┴", "┘"))?;
        }
        if let Some(n) = self.note() {
            write!(out, "\n{n}")?;
        }
        Ok(())
    }
}

/// A whole table in memory, fitted to the view's width when drawn
/// (`{}`): the tables with a few rows (commands, latency, sessions).
#[derive(Debug, Clone)]
pub struct Grid {
    cols: Vec<Col>,
    rows: Vec<Vec<String>>,
    measure: Measure,
    width: Option<usize>,
}

impl Grid {
    pub fn new<C: Into<Col>>(view: &View, cols: impl IntoIterator<Item = C>) -> Grid {
        let cols: Vec<Col> = cols.into_iter().map(Into::into).collect();
        Grid {
            measure: Measure::new(cols.len()),
            cols,
            rows: Vec::new(),
            width: view.width,
        }
    }

    /// Adds a row (control characters escaped, see [`clean`]).
    pub fn add_row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        let row: Vec<String> = cells
            .into_iter()
            .map(|c| clean(c.as_ref()).into_owned())
            .collect();
        self.measure.add(&row);
        self.rows.push(row);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layout = Layout::new(&self.cols, &self.measure, self.width, Frame::Boxed);
        let mut out = Vec::new();
        let drawn = (|| {
            layout.head(&mut out)?;
            for r in &self.rows {
                layout.row(&mut out, r)?;
            }
            layout.foot(&mut out)
        })();
        drawn.map_err(|_| fmt::Error)?;
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// A cell's text made safe for a terminal and for [`super::spill`]'s row
/// encoding: control characters (a hostile capture's URI can hold escape
/// sequences) are shown escaped (`\x1b`, `\n`).
pub fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
    use proptest::prelude::*;

    fn comfy(columns: &[String], rows: &[Vec<String>]) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(columns.to_vec());
        for r in rows {
            t.add_row(r.clone());
        }
        t.to_string()
    }

    fn ours(
        columns: &[&'static str],
        rows: &[Vec<String>],
        width: Option<usize>,
    ) -> (String, Layout) {
        let view = View {
            width,
            ..View::default()
        };
        let mut g = Grid::new(&view, columns.iter().copied());
        for r in rows {
            g.add_row(r);
        }
        let cols: Vec<Col> = columns.iter().map(|&c| c.into()).collect();
        let layout = Layout::new(&cols, &g.measure, width, Frame::Boxed);
        (g.to_string(), layout)
    }

    proptest! {
        /// Byte for byte what comfy-table draws, for cells of letters,
        /// digits, punctuation, spaces inside and wide or accented letters:
        /// without a width, and in a width where the headers wrap (comfy-
        /// table given the same header lines).
        #[test]
        fn same_as_comfy_table(
            rows in prop::collection::vec(
                prop::collection::vec("[a-z0-9:.\\->µé中 ]{0,12}", 3), 0..6),
            width in 20usize..60,
        ) {
            let columns = ["id", "latency ms p50", "c"];
            let (text, _) = ours(&columns, &rows, None);
            let names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            prop_assert_eq!(text, comfy(&names, &rows));
            let (text, layout) = ours(&columns, &rows, Some(width));
            let cut = layout.fits.iter().zip(&layout.widths).enumerate().any(|(k, (_, w))| {
                rows.iter().any(|r| r[k].width() > *w)
            });
            if layout.pad && layout.hidden.is_empty() && !cut {
                let names: Vec<String> = layout.heads.iter().map(|h| h.join("\n")).collect();
                prop_assert_eq!(text, comfy(&names, &rows));
            }
        }
    }

    #[test]
    fn a_narrow_table_cuts_and_says_what_it_hid() {
        let view = View {
            width: Some(30),
            ..View::default()
        };
        let mut g = Grid::new(
            &view,
            [
                Col::new("client"),
                Col::new("name"),
                Col::new("offset").hide(1),
            ],
        );
        g.add_row(["10.0.2.16:56794", "longlink_identify_resp", "123456"]);
        let text = g.to_string();
        assert!(text.lines().all(|l| l.chars().count() <= 30), "{text}");
        assert!(text.contains("…"), "{text}");
        let note = text.rsplit('┘').next().unwrap().replace("\n ", "");
        assert_eq!(
            note, "\n(hidden to fit 30 columns: offset; --wide shows every column)",
            "{text}"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("GET /a\x1b[2J\r\n"), "GET /a\\x1b[2J\\r\\n");
        assert_eq!(clean("\x1f"), "\\x1f");
        assert!(matches!(clean("plain µ"), std::borrow::Cow::Borrowed(_)));
    }
}
