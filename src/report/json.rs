//! JSON as syncscope writes it: serde_json, with one rule for integers.
//!
//! An integer that a JSON reader using IEEE doubles (JavaScript, jq before
//! 1.7, most spreadsheets) cannot hold exactly, that is beyond ±(2^53 − 1)
//! (`Number.MAX_SAFE_INTEGER`), is written as a string of its decimal
//! digits: `"1764039458026142061"`; every other integer stays a number. The
//! rule is applied where the text is written (a serde_json `Formatter`), so
//! it holds for every report and every decoded body alike, typed fields and
//! schema-less protobuf trees, whose field types syncscope cannot know.
//! `jq '.x | tostring'` reads such a field the same whichever form it has.
//!
//! Only syncscope's own reports go through here: what `serve` answers on
//! the wire stays as the real service sends it.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, PrettyFormatter, Serializer};

/// The largest integer an IEEE double holds exactly, with every smaller one.
pub const MAX_SAFE: u64 = (1 << 53) - 1;

/// A formatter that writes unsafe integers as strings (outside strings:
/// an integer map key is a string already).
struct SafeInts<F> {
    inner: F,
    in_string: bool,
}

impl<F> SafeInts<F> {
    fn new(inner: F) -> Self {
        SafeInts {
            inner,
            in_string: false,
        }
    }
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $t:ty),*);)*) => {
        $(fn $name<W: ?Sized + Write>(&mut self, w: &mut W $(, $arg: $t)*) -> io::Result<()> {
            self.inner.$name(w $(, $arg)*)
        })*
    };
}

impl<F: Formatter> Formatter for SafeInts<F> {
    forward! {
        write_null();
        write_bool(v: bool);
        write_i8(v: i8);
        write_i16(v: i16);
        write_i32(v: i32);
        write_u8(v: u8);
        write_u16(v: u16);
        write_u32(v: u32);
        write_f32(v: f32);
        write_f64(v: f64);
        write_number_str(v: &str);
        write_string_fragment(v: &str);
        write_char_escape(v: CharEscape);
        write_byte_array(v: &[u8]);
        begin_array();
        end_array();
        end_array_value();
        begin_object();
        end_object();
        end_object_key();
        begin_object_value();
        end_object_value();
        write_raw_fragment(v: &str);
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.inner.begin_object_key(w, first)
    }

    fn begin_string<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.in_string = true;
        self.inner.begin_string(w)
    }

    fn end_string<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.in_string = false;
        self.inner.end_string(w)
    }

    fn write_u64<W: ?Sized + Write>(&mut self, w: &mut W, v: u64) -> io::Result<()> {
        if v > MAX_SAFE && !self.in_string {
            write!(w, "\"{v}\"")
        } else {
            self.inner.write_u64(w, v)
        }
    }

    fn write_i64<W: ?Sized + Write>(&mut self, w: &mut W, v: i64) -> io::Result<()> {
        if v.unsigned_abs() > MAX_SAFE && !self.in_string {
            write!(w, "\"{v}\"")
        } else {
            self.inner.write_i64(w, v)
        }
    }

    fn write_u128<W: ?Sized + Write>(&mut self, w: &mut W, v: u128) -> io::Result<()> {
        if v > MAX_SAFE as u128 && !self.in_string {
            write!(w, "\"{v}\"")
        } else {
            self.inner.write_u128(w, v)
        }
    }

    fn write_i128<W: ?Sized + Write>(&mut self, w: &mut W, v: i128) -> io::Result<()> {
        if v.unsigned_abs() > MAX_SAFE as u128 && !self.in_string {
            write!(w, "\"{v}\"")
        } else {
            self.inner.write_i128(w, v)
        }
    }
}

/// `value` as one line of JSON (NDJSON records).
pub fn to_writer<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> io::Result<()> {
    let mut s = Serializer::with_formatter(out, SafeInts::new(CompactFormatter));
    value.serialize(&mut s).map_err(io::Error::from)
}

/// `value` as pretty-printed JSON (documents). The serializer writes a
/// token at a time: it gets a buffer of its own, so that those writes are
/// not each a call through `out` (often a `dyn Write`: with one, a quarter
/// of the time spent writing a large report went to those calls).
pub fn to_writer_pretty<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> io::Result<()> {
    let mut buf = io::BufWriter::with_capacity(64 << 10, out);
    let mut s = Serializer::with_formatter(&mut buf, SafeInts::new(PrettyFormatter::new()));
    value.serialize(&mut s).map_err(io::Error::from)?;
    buf.flush()
}

/// [`to_writer`] into a string.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> io::Result<String> {
    let mut v = Vec::new();
    to_writer(&mut v, value)?;
    String::from_utf8(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// [`to_writer_pretty`] into a string.
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> io::Result<String> {
    let mut v = Vec::new();
    to_writer_pretty(&mut v, value)?;
    String::from_utf8(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Ids {
        small: u64,
        safe: u64,
        unsafe_: u64,
        negative: i64,
        text: &'static str,
        keys: BTreeMap<u64, u64>,
        tree: serde_json::Value,
    }

    #[test]
    fn unsafe_integers_are_strings_everywhere_else_numbers() {
        let big = 1_764_039_458_026_142_061u64;
        let v = Ids {
            small: 7,
            safe: MAX_SAFE,
            unsafe_: MAX_SAFE + 1,
            negative: -(1 << 60),
            text: "1764039458026142061",
            keys: [(big, big)].into(),
            tree: serde_json::json!({"5": big, "list": [1, u64::MAX]}),
        };
        let text = to_string(&v).unwrap();
        assert_eq!(
            text,
            r#"{"small":7,"safe":9007199254740991,"unsafe_":"9007199254740992","negative":"-1152921504606846976","text":"1764039458026142061","keys":{"1764039458026142061":"1764039458026142061"},"tree":{"5":"1764039458026142061","list":[1,"18446744073709551615"]}}"#
        );
        // Read back exactly, and pretty printing follows the same rule.
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back["tree"]["5"].as_str().unwrap().parse::<u64>().unwrap(),
            big
        );
        let pretty = to_string_pretty(&v).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&pretty).unwrap(),
            back
        );
        assert!(pretty.contains("\"small\": 7,\n"), "{pretty}");
    }
}
