//! Tables that fit the terminal: how a column gives up width ([`Fit`]),
//! what a column is ([`Col`]), what its cells look like ([`Measure`], grown a
//! row at a time), and where it all goes ([`Layout`]: widths, padding,
//! header lines, hidden columns). Every table goes through [`Layout::new`];
//! [`super::grid`] draws it.
//!
//! The steps, each taken only when the table is still too wide, lossless
//! ones first:
//! 1. headers wrap at spaces onto more lines (`bytes c->s` over two lines);
//! 2. the frame loses its padding (`│a┆b│` instead of `│ a ┆ b │`);
//! 3. columns with no cell are hidden;
//! 4. RFC 3339 times lose their date, then digits past the millisecond
//!    (`…04:07:29.778`); then cells are cut, the column with the most to
//!    spare first, each down to a floor: text at the end (`manualau…`),
//!    tokens with digits (addresses, ids, hex) in the middle
//!    (`10.0.…:56794`); numbers are never cut;
//! 5. the columns declared optional are hidden, in their order, step 4
//!    tried again after each; a note under the table names what was hidden;
//! 6. cells are cut further, then headers; past that the table is as
//!    narrow as it gets and overflows.
//!
//! How a column's cells fit is declared ([`Col::fit`]) or inferred from the
//! cells ([`Measure::inferred`]), so a new table fits without any tuning.

use std::borrow::Cow;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// How a column's cells give up width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Never cut (numbers).
    Keep,
    /// Cut at the end: `manualau…` (names, free text).
    End,
    /// Cut in the middle, both ends kept: `10.0.…:56794` (addresses, ids, hex).
    Middle,
    /// An RFC 3339 time: the date goes first (`…04:07:29.778441Z`), then
    /// digits of the fraction (`…04:07:29`).
    Time,
}

impl Fit {
    /// The narrowest a cell of this kind is cut to before optional columns
    /// are hidden.
    fn floor(self) -> usize {
        match self {
            Fit::Keep => usize::MAX,
            Fit::End => 10,
            Fit::Middle => 15,
            // Milliseconds: `…04:07:29.778`.
            Fit::Time => 13,
        }
    }

    /// The narrowest a cell of this kind is ever cut to.
    fn hard_floor(self) -> usize {
        match self {
            Fit::Keep => usize::MAX,
            Fit::End => 5,
            Fit::Middle => 7,
            Fit::Time => 9,
        }
    }

    /// The width a cell `content` wide takes in a column `w` wide: a time
    /// loses its date at once (11 columns), then a digit at a time.
    fn used(self, content: usize, w: usize) -> usize {
        match self {
            Fit::Time if w >= content => w,
            Fit::Time if w >= content.saturating_sub(11) => content.saturating_sub(11),
            Fit::Time if w == 10 => 9,
            _ => w,
        }
    }
}

/// A column: its header, how its cells fit (inferred from them when not
/// declared), and whether it may be hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Col {
    pub name: Cow<'static, str>,
    /// `None`: inferred from the cells ([`Measure`]).
    pub fit: Option<Fit>,
    /// 0: always shown; otherwise hidden when the table cannot fit, lowest
    /// first.
    pub hide: u8,
    /// Width in the live rows of `sniff` (drawn before any cell is seen);
    /// 0: not in the live rows.
    pub live: u16,
    /// Left out altogether (not noted as hidden) when no cell holds anything,
    /// whatever the width: a column most tables never need.
    pub sparse: bool,
}

impl Col {
    pub const fn new(name: &'static str) -> Col {
        Col {
            name: Cow::Borrowed(name),
            fit: None,
            hide: 0,
            live: 0,
            sparse: false,
        }
    }

    /// Left out when every cell is empty (see [`Col::sparse`]).
    pub const fn sparse(mut self) -> Col {
        self.sparse = true;
        self
    }

    /// Declares how the cells fit instead of inferring it.
    pub const fn fit(mut self, f: Fit) -> Col {
        self.fit = Some(f);
        self
    }

    /// Hidden when the table cannot fit otherwise (`order` 1 first).
    pub const fn hide(mut self, order: u8) -> Col {
        self.hide = order;
        self
    }

    /// Shown in the live rows, `width` wide.
    pub const fn live(mut self, width: u16) -> Col {
        self.live = width;
        self
    }
}

impl From<&'static str> for Col {
    fn from(name: &'static str) -> Col {
        Col::new(name)
    }
}

/// What the cells of a column looked like so far (bounded: a few numbers
/// per column, however many rows).
#[derive(Debug, Clone, Copy)]
struct Stat {
    width: usize,
    /// Non-empty cells seen.
    cells: u64,
    numbers: bool,
    times: bool,
    spaces: bool,
    /// Every cell holds a digit.
    digits: bool,
}

impl Default for Stat {
    fn default() -> Self {
        Stat {
            width: 0,
            cells: 0,
            numbers: true,
            times: true,
            spaces: false,
            digits: true,
        }
    }
}

/// A number as the tables print them: `12`, `-3`, `0.5`, `0x1f`, `3/4`.
fn is_number(s: &str) -> bool {
    s.split('/').all(|p| {
        if let Some(h) = p.strip_prefix("0x") {
            return !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit());
        }
        let p = p.strip_prefix(['-', '+']).unwrap_or(p);
        let (int, frac) = p.split_once('.').unwrap_or((p, "0"));
        !int.is_empty()
            && !frac.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
    })
}

/// `2023-12-05T01:09:20.449101Z` (or `@<secs>` past the calendar).
fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    (b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && b.ends_with(b"Z"))
        || b.first() == Some(&b'@')
}

/// Widths and kinds of a table's columns, grown a row at a time.
#[derive(Debug, Clone)]
pub struct Measure {
    stats: Vec<Stat>,
}

impl Measure {
    pub fn new(columns: usize) -> Measure {
        Measure {
            stats: vec![Stat::default(); columns],
        }
    }

    /// Takes a row's cells into account.
    pub fn add<S: AsRef<str>>(&mut self, cells: &[S]) {
        for (st, c) in self.stats.iter_mut().zip(cells) {
            let c = c.as_ref();
            if c.is_empty() {
                continue;
            }
            st.width = st.width.max(c.width());
            st.cells += 1;
            st.numbers &= is_number(c);
            st.times &= is_time(c);
            st.spaces |= c.contains(' ');
            st.digits &= c.bytes().any(|b| b.is_ascii_digit());
        }
    }

    /// The widest cell of column `i`.
    pub fn width(&self, i: usize) -> usize {
        self.stats.get(i).map_or(0, |s| s.width)
    }

    /// How column `i`'s cells fit, from what they looked like: numbers are
    /// kept, times lose their date, text is cut at the end, tokens with
    /// digits (addresses, ids, hex) in the middle, other words at the end.
    pub fn inferred(&self, i: usize) -> Fit {
        let Some(s) = self.stats.get(i) else {
            return Fit::End;
        };
        if s.cells == 0 || s.numbers {
            Fit::Keep
        } else if s.times {
            Fit::Time
        } else if !s.spaces && s.digits {
            Fit::Middle
        } else {
            Fit::End
        }
    }
}

/// The frame a table is drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// comfy-table's `UTF8_FULL_CONDENSED` look (see [`super::grid`]).
    Boxed,
    /// Columns one space apart, no border (the live rows of `sniff`).
    Plain,
}

/// Where a table's columns go: the shown columns, their widths and header
/// lines, and what was hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Indices (into the table's columns) of the columns shown.
    pub shown: Vec<usize>,
    /// Width of each shown column, without padding.
    pub widths: Vec<usize>,
    pub fits: Vec<Fit>,
    /// The header of each shown column, one entry per header line.
    pub heads: Vec<Vec<String>>,
    /// One space each side of a cell (only [`Frame::Boxed`]).
    pub pad: bool,
    pub frame: Frame,
    /// Names of the columns hidden to fit.
    pub hidden: Vec<String>,
    /// The width the table was fitted to.
    pub budget: Option<usize>,
}

/// Width of the widest word of a header.
fn widest_word(s: &str) -> usize {
    s.split(' ').map(|w| w.width()).max().unwrap_or(0)
}

/// Narrows `w` towards `floor` until it adds up to `avail` at most, taking
/// from the columns with the most to spare first; false when the floors are
/// still too wide (then `w` is the floors).
fn shrink(w: &mut [usize], floor: &[usize], avail: usize) -> bool {
    let total: usize = w.iter().sum();
    if total <= avail {
        return true;
    }
    let need = total - avail;
    let spare: Vec<usize> = w
        .iter()
        .zip(floor)
        .map(|(w, f)| w.saturating_sub(*f))
        .collect();
    if spare.iter().sum::<usize>() < need {
        for (w, f) in w.iter_mut().zip(floor) {
            *w = (*w).min(*f);
        }
        return false;
    }
    // The highest level to which the spares are cut that frees enough.
    let freed = |level: usize| -> usize { spare.iter().map(|s| s.saturating_sub(level)).sum() };
    let (mut lo, mut hi) = (0usize, spare.iter().copied().max().unwrap_or(0));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if freed(mid) >= need {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut surplus = freed(lo) - need;
    for (w, s) in w.iter_mut().zip(&spare) {
        if *s > lo {
            *w -= s - lo;
            if surplus > 0 {
                *w += 1;
                surplus -= 1;
            }
        }
    }
    true
}

/// `v`'s entries at `shown`.
fn pick_of(v: &[usize], shown: &[usize]) -> Vec<usize> {
    shown.iter().map(|&i| v[i]).collect()
}

impl Layout {
    /// Fits `cols` (measured by `m`) to `budget` display columns; `None`
    /// never cuts.
    pub fn new(cols: &[Col], m: &Measure, budget: Option<usize>, frame: Frame) -> Layout {
        let content: Vec<usize> = (0..cols.len()).map(|i| m.width(i)).collect();
        let fits: Vec<Fit> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| match c.fit {
                // Declared a time, but holding relative times (numbers).
                Some(Fit::Time) if m.inferred(i) != Fit::Time => m.inferred(i),
                Some(f) => f,
                None => m.inferred(i),
            })
            .collect();
        Self::plan(cols, &content, &fits, budget, frame)
    }

    /// The live rows' layout: the columns with a live width, as wide as it
    /// says (no cell is seen before the header is drawn); with `relative`
    /// times, a time column holds seconds (12 wide, never cut).
    pub fn live(cols: &[Col], budget: Option<usize>, relative: bool) -> Layout {
        let shown: Vec<Col> = cols.iter().filter(|c| c.live > 0).cloned().collect();
        let time = |c: &Col| relative && c.fit == Some(Fit::Time);
        let content: Vec<usize> = shown
            .iter()
            .map(|c| if time(c) { 12 } else { c.live as usize })
            .collect();
        let fits: Vec<Fit> = shown
            .iter()
            .map(|c| {
                if time(c) {
                    Fit::Keep
                } else {
                    c.fit.unwrap_or(Fit::End)
                }
            })
            .collect();
        let mut l = Self::plan(&shown, &content, &fits, budget, Frame::Plain);
        // Indices into `cols`, not into the live subset.
        let index: Vec<usize> = (0..cols.len()).filter(|&i| cols[i].live > 0).collect();
        l.shown = l.shown.iter().map(|&i| index[i]).collect();
        l
    }

    fn overhead(frame: Frame, n: usize, pad: bool) -> usize {
        match frame {
            Frame::Boxed if pad => 3 * n + 1,
            Frame::Boxed => n + 1,
            Frame::Plain => n.saturating_sub(1),
        }
    }

    fn plan(
        cols: &[Col],
        content: &[usize],
        fits: &[Fit],
        budget: Option<usize>,
        frame: Frame,
    ) -> Layout {
        let n = cols.len();
        let natural: Vec<usize> = (0..n)
            .map(|i| content[i].max(cols[i].name.width()))
            .collect();
        let absent = |i: usize| cols[i].sparse && content[i] == 0;
        let done = |shown: Vec<usize>, mut widths: Vec<usize>, pad: bool| {
            if let Some(budget) = budget {
                // Times take less than their column; what they leave goes
                // to the other cut columns, the most cut first.
                for (w, &i) in widths.iter_mut().zip(&shown) {
                    *w = fits[i].used(content[i], *w);
                }
                let total: usize =
                    widths.iter().sum::<usize>() + Self::overhead(frame, shown.len(), pad);
                for _ in total..budget {
                    let most = (0..shown.len())
                        .filter(|&k| !matches!(fits[shown[k]], Fit::Keep | Fit::Time))
                        .filter(|&k| widths[k] < content[shown[k]])
                        .max_by_key(|&k| content[shown[k]] - widths[k]);
                    match most {
                        Some(k) => widths[k] += 1,
                        None => break,
                    }
                }
            }
            let heads: Vec<Vec<String>> = shown
                .iter()
                .zip(&widths)
                .map(|(&i, &w)| wrap_header(&cols[i].name, w))
                .collect();
            // A wrapped header may leave a column wider than all it holds.
            for ((w, h), &i) in widths.iter_mut().zip(&heads).zip(&shown) {
                let widest = h.iter().map(|l| l.width()).max().unwrap_or(0);
                *w = (*w).min(widest.max(content[i]));
            }
            let hidden = (0..n)
                .filter(|i| !shown.contains(i) && !absent(*i))
                .map(|i| cols[i].name.to_string())
                .collect();
            Layout {
                fits: shown.iter().map(|&i| fits[i]).collect(),
                shown,
                widths,
                heads,
                pad,
                frame,
                hidden,
                budget,
            }
        };
        let all: Vec<usize> = (0..n).filter(|&i| !absent(i)).collect();
        let Some(budget) = budget else {
            let natural = pick_of(&natural, &all);
            return done(all, natural, frame == Frame::Boxed);
        };
        let lossless: Vec<usize> = (0..n)
            .map(|i| content[i].max(widest_word(&cols[i].name)))
            .collect();
        let cut: Vec<usize> = (0..n)
            .map(|i| match fits[i] {
                Fit::Keep => lossless[i],
                f => content[i]
                    .min(f.floor())
                    .max(widest_word(&cols[i].name))
                    .min(lossless[i]),
            })
            .collect();
        // Times lose their date and digits past the millisecond before any
        // other cell is cut.
        let times_first: Vec<usize> = (0..n)
            .map(|i| {
                if fits[i] == Fit::Time {
                    cut[i]
                } else {
                    lossless[i]
                }
            })
            .collect();
        let pick =
            |v: &[usize], shown: &[usize]| -> Vec<usize> { shown.iter().map(|&i| v[i]).collect() };
        let pads: &[bool] = if frame == Frame::Boxed {
            &[true, false]
        } else {
            &[false]
        };
        // Lossless: headers wrapped, then the padding gone; then the same
        // without the columns that hold nothing.
        let nonempty: Vec<usize> = (0..n).filter(|&i| content[i] > 0).collect();
        let mut sets = vec![all.clone()];
        if nonempty.len() < all.len() && !nonempty.is_empty() {
            sets.push(nonempty);
        }
        for shown in &sets {
            for &pad in pads {
                let mut w = pick(&natural, shown);
                let avail = budget.saturating_sub(Self::overhead(frame, shown.len(), pad));
                if shrink(&mut w, &pick(&lossless, shown), avail) {
                    return done(shown.clone(), w, pad);
                }
            }
        }
        // Cut cells, hiding the optional columns one after the other, in
        // their order.
        let mut shown = sets.pop().unwrap_or_default();
        let mut optional: Vec<usize> = shown
            .iter()
            .copied()
            .filter(|&i| cols[i].hide > 0)
            .collect();
        optional.sort_by_key(|&i| cols[i].hide);
        for k in 0..=optional.len() {
            if k > 0 {
                shown.retain(|&i| i != optional[k - 1]);
            }
            let avail = budget.saturating_sub(Self::overhead(frame, shown.len(), false));
            let mut w = pick(&natural, &shown);
            if shrink(&mut w, &pick(&lossless, &shown), avail)
                || shrink(&mut w, &pick(&times_first, &shown), avail)
                || shrink(&mut w, &pick(&cut, &shown), avail)
            {
                return done(shown, w, false);
            }
        }
        // Cells cut further, then headers too; past that the table overflows.
        let avail = budget.saturating_sub(Self::overhead(frame, shown.len(), false));
        let hard = |header: bool| -> Vec<usize> {
            shown
                .iter()
                .map(|&i| {
                    let w = match fits[i] {
                        Fit::Keep => content[i],
                        f => content[i].min(f.hard_floor()),
                    };
                    let w = if header {
                        w.max(widest_word(&cols[i].name))
                    } else {
                        w
                    };
                    w.min(lossless[i]).max(1)
                })
                .collect()
        };
        let mut w = pick(&natural, &shown);
        let _ = shrink(&mut w, &pick(&cut, &shown), avail)
            || shrink(&mut w, &hard(true), avail)
            || shrink(&mut w, &hard(false), avail);
        done(shown, w, false)
    }

    /// Lines of the header.
    pub fn head_lines(&self) -> usize {
        self.heads.iter().map(Vec::len).max().unwrap_or(1).max(1)
    }

    /// A line saying which columns were hidden to fit, if any.
    pub fn note(&self) -> Option<String> {
        if self.hidden.is_empty() {
            return None;
        }
        let text = format!(
            "(hidden to fit {} columns: {}; --wide shows every column)",
            self.budget.unwrap_or(0),
            self.hidden.join(", ")
        );
        Some(super::view::wrap(&text, self.budget))
    }

    /// Shown cell `k` of a row (`cells` in the table's column order), cut
    /// to its column.
    pub fn cell<'c, S: AsRef<str>>(&self, cells: &'c [S], k: usize) -> Cow<'c, str> {
        let c = cells.get(self.shown[k]).map_or("", |c| c.as_ref());
        cut(c, self.widths[k], self.fits[k])
    }
}

/// A header's lines in `w` columns: the whole header when it fits, else
/// wrapped at spaces, a word wider than `w` cut at its end.
fn wrap_header(name: &str, w: usize) -> Vec<String> {
    if name.width() <= w {
        return vec![name.to_owned()];
    }
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in name.split(' ') {
        let word = cut(word, w, Fit::End);
        if !line.is_empty() && line.width() + 1 + word.width() <= w {
            line.push(' ');
            line.push_str(&word);
        } else {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            line = word.into_owned();
        }
    }
    lines.push(line);
    lines
}

/// The longest prefix of `s` at most `w` columns wide.
pub(super) fn prefix(s: &str, w: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.width().unwrap_or(0);
        if used > w {
            return &s[..i];
        }
    }
    s
}

/// The longest suffix of `s` at most `w` columns wide.
fn suffix(s: &str, w: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices().rev() {
        used += c.width().unwrap_or(0);
        if used > w {
            return &s[i + c.len_utf8()..];
        }
    }
    s
}

/// `s` in at most `w` display columns, as `fit` cuts it, with `…` where
/// something was left out (a [`Fit::Keep`] cell is never cut).
pub fn cut(s: &str, w: usize, fit: Fit) -> Cow<'_, str> {
    if s.width() <= w || fit == Fit::Keep {
        return s.into();
    }
    if w == 0 {
        return "".into();
    }
    let end = |s: &str| format!("{}…", prefix(s, w - 1));
    match fit {
        Fit::Keep => s.into(),
        Fit::End => end(s).into(),
        Fit::Middle if w < 5 => end(s).into(),
        Fit::Middle => {
            let head = (w - 1) / 2;
            format!("{}…{}", prefix(s, head), suffix(s, w - 1 - head)).into()
        }
        Fit::Time => cut_time(s, w).unwrap_or_else(|| end(s)).into(),
    }
}

/// An RFC 3339 time without its date, and with as many digits of its
/// fraction as fit: `…04:07:29.778441`, `…04:07:29`.
fn cut_time(s: &str, w: usize) -> Option<String> {
    if !is_time(s) || s.starts_with('@') || s.len() < 20 {
        return None;
    }
    let time = s.get(11..s.len() - 1)?; // HH:MM:SS[.fff]
    let whole = time.get(..8)?;
    let frac = time.get(9..).unwrap_or("");
    (0..=frac.len()).rev().find_map(|d| {
        let t = if d == 0 {
            format!("…{whole}")
        } else {
            format!("…{whole}.{}", &frac[..d])
        };
        (t.width() <= w).then_some(t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cells_are_cut_by_kind() {
        assert_eq!(cut("manualauth_resp", 9, Fit::End), "manualau…");
        assert_eq!(cut("10.0.2.16:56794", 12, Fit::Middle), "10.0.…:56794");
        assert_eq!(
            cut("2026-11-22T04:00:25.768051071Z", 20, Fit::Time),
            "…04:00:25.768051071"
        );
        assert_eq!(
            cut("2026-11-22T04:00:25.768051071Z", 13, Fit::Time),
            "…04:00:25.768"
        );
        assert_eq!(
            cut("2026-11-22T04:00:25.768051071Z", 9, Fit::Time),
            "…04:00:25"
        );
        assert_eq!(cut("2026-11-22T04:00:25Z", 9, Fit::Time), "…04:00:25");
        assert_eq!(cut("1000000205", 3, Fit::Keep), "1000000205");
        assert_eq!(cut("short", 9, Fit::Middle), "short");
        // Wide letters count two columns.
        assert_eq!(cut("中中中中", 5, Fit::End), "中中…");
    }

    #[test]
    fn kinds_are_inferred_from_the_cells() {
        let mut m = Measure::new(6);
        m.add(&[
            "12",
            "10.0.2.16:56794",
            "newsync",
            "2026-11-22T04:00:25.768Z",
            "a b",
            "",
        ]);
        m.add(&["0x1f", "[::1]:80", "noop", "2026-11-22T04:00:26Z", "c", ""]);
        let fits: Vec<Fit> = (0..6).map(|i| m.inferred(i)).collect();
        assert_eq!(
            fits,
            [
                Fit::Keep,
                Fit::Middle,
                Fit::End,
                Fit::Time,
                Fit::End,
                Fit::Keep
            ]
        );
        assert!(is_number("3/4") && is_number("-0.5") && !is_number("1.") && !is_number("add"));
    }

    fn measured(rows: &[Vec<String>], n: usize) -> Measure {
        let mut m = Measure::new(n);
        for r in rows {
            m.add(r);
        }
        m
    }

    /// The drawn width of a layout: frame plus columns.
    fn drawn(l: &Layout) -> usize {
        l.widths.iter().sum::<usize>() + Layout::overhead(l.frame, l.widths.len(), l.pad)
    }

    #[test]
    fn steps_go_lossless_first() {
        let cols: Vec<Col> = vec!["id".into(), "bytes c->s".into(), "client".into()];
        let rows = vec![vec!["1".to_owned(), "598".into(), "10.0.2.16:56794".into()]];
        let m = measured(&rows, 3);
        // Natural: 2 + 10 + 15 + 10 = 37.
        let full = Layout::new(&cols, &m, Some(37), Frame::Boxed);
        assert_eq!((full.widths.clone(), full.pad), (vec![2, 10, 15], true));
        // The header wraps first.
        let wrapped = Layout::new(&cols, &m, Some(32), Frame::Boxed);
        assert_eq!(wrapped.widths, [2, 5, 15]);
        assert_eq!(wrapped.heads[1], ["bytes", "c->s"]);
        assert!(wrapped.pad);
        // Then the padding goes.
        let bare = Layout::new(&cols, &m, Some(26), Frame::Boxed);
        assert_eq!((bare.widths.clone(), bare.pad), (vec![2, 5, 15], false));
        // Then the address is cut in the middle, never the numbers.
        let cut = Layout::new(&cols, &m, Some(22), Frame::Boxed);
        assert_eq!(cut.widths, [2, 5, 11]);
        assert_eq!(cut.cell(&rows[0], 2), "10.0.…56794");
        assert!(cut.hidden.is_empty() && cut.note().is_none());
    }

    #[test]
    fn a_sparse_column_is_left_out_when_empty_and_noted_only_when_hidden_to_fit() {
        let cols = vec![Col::new("id"), Col::new("tunnel").hide(1).sparse()];
        let empty = measured(&[vec!["1".to_owned(), String::new()]], 2);
        for budget in [None, Some(80)] {
            let l = Layout::new(&cols, &empty, budget, Frame::Boxed);
            assert_eq!((l.shown.clone(), l.note()), (vec![0], None), "{budget:?}");
        }
        let full = measured(&[vec!["1".to_owned(), "gtp-u 10.0.0.1-10.0.0.2".into()]], 2);
        assert_eq!(Layout::new(&cols, &full, None, Frame::Boxed).shown, [0, 1]);
        let narrow = Layout::new(&cols, &full, Some(12), Frame::Boxed);
        assert_eq!(narrow.shown, [0]);
        assert!(narrow.note().unwrap().contains("tunnel"));
    }

    #[test]
    fn optional_columns_go_when_cutting_is_not_enough() {
        let cols = vec![
            Col::new("a"),
            Col::new("offset").hide(2),
            Col::new("mmtls").hide(1),
        ];
        let rows = vec![vec![
            "123456".to_owned(),
            "123456".into(),
            "#1 decrypted".into(),
        ]];
        let m = measured(&rows, 3);
        let l = Layout::new(&cols, &m, Some(22), Frame::Boxed);
        assert_eq!(l.shown, [0, 1]);
        assert_eq!(l.hidden, ["mmtls"]);
        let note = l.note().unwrap();
        assert!(note.lines().all(|l| l.width() <= 22), "{note}");
        assert!(
            note.replace("\n ", "").contains(": mmtls; --wide"),
            "{note}"
        );
        assert!(drawn(&l) <= 22);
    }

    #[test]
    fn live_rows_use_the_declared_widths() {
        let cols = vec![
            Col::new("ts").fit(Fit::Time).live(30),
            Col::new("offset"),
            Col::new("name").fit(Fit::End).live(22),
        ];
        let l = Layout::live(&cols, None, false);
        assert_eq!(
            (l.shown.clone(), l.widths.clone()),
            (vec![0, 2], vec![30, 22])
        );
        let l = Layout::live(&cols, None, true);
        assert_eq!(
            (l.widths.clone(), l.fits.clone()),
            (vec![12, 22], vec![Fit::Keep, Fit::End])
        );
        let l = Layout::live(&cols, Some(40), false);
        assert!(drawn(&l) <= 40, "{l:?}");
        assert_eq!(l.shown, [0, 2]);
    }

    proptest! {
        /// Whatever the cells and the budget: the table is no wider than
        /// the budget unless every column is at its narrowest, numbers are
        /// never cut, and no cut cell is wider than its column.
        #[test]
        fn fits_or_is_as_narrow_as_it_gets(
            rows in prop::collection::vec(
                prop::collection::vec("[a-z0-9:. é中]{0,30}", 5), 1..5),
            budget in 10usize..120,
        ) {
            let cols: Vec<Col> = vec!["id".into(), "client addr".into(), "c".into(), "detail".into(), "n".into()];
            let m = measured(&rows, 5);
            let l = Layout::new(&cols, &m, Some(budget), Frame::Boxed);
            let narrowest: usize = l.shown.iter().zip(&l.fits).map(|(&i, f)| match f {
                Fit::Keep => m.width(i),
                f => m.width(i).min(f.hard_floor()),
            }.max(1)).sum::<usize>() + Layout::overhead(Frame::Boxed, l.shown.len(), false);
            prop_assert!(drawn(&l) <= budget.max(narrowest), "{l:?}");
            for r in &rows {
                for k in 0..l.shown.len() {
                    let c = l.cell(r, k);
                    if l.fits[k] == Fit::Keep {
                        prop_assert_eq!(c.as_ref(), r[l.shown[k]].as_str());
                    } else {
                        prop_assert!(c.width() <= l.widths[k]);
                    }
                }
            }
        }
    }
}
