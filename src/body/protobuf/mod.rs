//! Protobuf bodies: schema-less decoding ([`decode_raw`]) and decoding with
//! a user's `.proto` files compiled at run time ([`Schemas`]).
//!
//! # Schema-less decoding
//!
//! [`decode_raw`] works like `protoc --decode_raw`: it walks the wire format
//! and returns a tree of [`Field`]s borrowing from the input. A
//! length-delimited value is shown as a nested message when its bytes parse
//! cleanly as one (every field valid, the bytes consumed exactly, not empty,
//! nesting at most [`MAX_DEPTH`]), else as text when it is printable UTF-8,
//! else as raw bytes. Unlike protoc, a value that is printable text *and*
//! happens to parse as a message (`"hi"` is field 13 = 105, `"en_US"` is a
//! fixed32 field 12) stays text unless its first byte is a control character
//! (a tag such as `0x0a`, field 1 length-delimited), which real text almost
//! never starts with. [`Fields`] renders a tree as readable JSON:
//!
//! ```text
//! {"1": 5, "2": {"1": "abc"}, "3": ["repeated", "values"],
//!  "4": {"hex": "789c...", "len": 300, "entropy": 7.41, "truncated": true, "sha256": "..."}}
//! ```
//!
//! It is hand-written on purpose: no maintained crate decodes protobuf
//! without a schema into this shape (prost and prost-reflect need a message
//! descriptor; the schema-less decoders on crates.io are unmaintained and
//! have no text/message heuristic, entropy figure or depth guard), and the
//! wire format is small enough that a few hundred lines, fuzzed by proptest,
//! are cheaper than a dependency.
//!
//! # Schema decoding
//!
//! [`Schemas::compile`] compiles `.proto` files with protox (no `protoc`
//! needed) into a prost-reflect descriptor pool; [`Schemas::decode`] decodes
//! bytes as a named message into JSON with the proto field names. Fields the
//! schema does not know are not lost: they are decoded schema-less under a
//! `"_unknown"` key of the message that holds them.
//!
//! # Files
//!
//! `wire.rs` the wire format ([`WireReader`], the one protobuf reader of the
//! crate, and the field encoders); `raw.rs` the schema-less tree and its
//! JSON; `blob.rs` opaque bytes with their entropy; `schema.rs` [`Schemas`];
//! `stream.rs` [`WireStream`], the top level of a message read as it arrives.

mod blob;
mod raw;
mod schema;
mod stream;
#[cfg(test)]
mod tests;
mod wire;

pub use blob::{entropy, Blob, HEX_PREFIX_LEN};
pub use raw::{decode_raw, encode_raw, to_json, Bytes, BytesKind, Field, Fields, Value};
pub use schema::{SchemaError, Schemas};
pub use stream::{Part, WireStream};
pub use wire::{
    encode_bytes_field, encode_tag, encode_varint, encode_varint_field, read_varint, RawError,
    RawReason, WireField, WireReader, WireType, WireValue, MAX_DEPTH, MAX_FIELD_NUMBER,
};
