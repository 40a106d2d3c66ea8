//! A table drawn a row at a time, in the same frame and padding as
//! comfy-table's `UTF8_FULL_CONDENSED` preset (the look of every other
//! table here), for tables with one row per connection or per frame.
//!
//! Why not comfy-table for those: it needs every cell of every row in
//! memory before it draws anything (3 GiB for the `flows` table of a
//! million-connection SYN scan), while these rows come back one at a time
//! from [`super::spill`] once the column widths are known. A test checks
//! the output against comfy-table's, byte for byte.

use std::io::{self, Write};

use unicode_width::UnicodeWidthStr;

/// Column widths (display columns, without padding), grown row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths(Vec<usize>);

impl Widths {
    /// The widths of a header.
    pub fn of_header(columns: &[&str]) -> Self {
        Widths(columns.iter().map(|c| c.width()).collect())
    }

    /// Widens the columns to fit `cells`.
    pub fn fit<S: AsRef<str>>(&mut self, cells: &[S]) {
        for (w, c) in self.0.iter_mut().zip(cells) {
            *w = (*w).max(c.as_ref().width());
        }
    }

    fn rule(
        &self,
        out: &mut dyn Write,
        left: &str,
        fill: &str,
        mid: &str,
        right: &str,
    ) -> io::Result<()> {
        let mut line = String::from(left);
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                line.push_str(mid);
            }
            line.push_str(&fill.repeat(w + 2));
        }
        line.push_str(right);
        writeln!(out, "{line}")
    }

    /// One row of cells, left-aligned, one space of padding each side.
    pub fn row<S: AsRef<str>>(&self, out: &mut dyn Write, cells: &[S]) -> io::Result<()> {
        let mut line = String::from("│");
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                line.push('┆');
            }
            let c = cells.get(i).map_or("", |c| c.as_ref());
            line.push(' ');
            line.push_str(c);
            line.push_str(&" ".repeat(w - c.width().min(*w) + 1));
        }
        line.push('│');
        writeln!(out, "{line}")
    }

    /// The top rule, the header and the rule under it.
    pub fn head(&self, out: &mut dyn Write, columns: &[&str]) -> io::Result<()> {
        self.rule(out, "┌", "─", "┬", "┐")?;
        self.row(out, columns)?;
        self.rule(out, "╞", "═", "╪", "╡")
    }

    /// The bottom rule (without a final newline after it, as comfy-table).
    pub fn foot(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut buf = Vec::new();
        self.rule(&mut buf, "└", "─", "┴", "┘")?;
        buf.pop();
        out.write_all(&buf)
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

    fn comfy(columns: &[&str], rows: &[Vec<String>]) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(columns.to_vec());
        for r in rows {
            t.add_row(r.clone());
        }
        t.to_string()
    }

    fn ours(columns: &[&str], rows: &[Vec<String>]) -> String {
        let mut w = Widths::of_header(columns);
        for r in rows {
            w.fit(r);
        }
        let mut out = Vec::new();
        w.head(&mut out, columns).unwrap();
        for r in rows {
            w.row(&mut out, r).unwrap();
        }
        w.foot(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    proptest! {
        /// Byte for byte what comfy-table draws, for cells of letters,
        /// digits, punctuation, spaces inside and wide or accented letters.
        #[test]
        fn same_as_comfy_table(
            rows in prop::collection::vec(
                prop::collection::vec("[a-z0-9:.\\->µé中 ]{0,12}", 3), 0..6)
        ) {
            let columns = ["id", "latency µs", "c"];
            prop_assert_eq!(ours(&columns, &rows), comfy(&columns, &rows));
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("GET /a\x1b[2J\r\n"), "GET /a\\x1b[2J\\r\\n");
        assert_eq!(clean("\x1f"), "\\x1f");
        assert!(matches!(clean("plain µ"), std::borrow::Cow::Borrowed(_)));
    }
}
