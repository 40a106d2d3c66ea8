//! Decoding with a user's `.proto` files compiled at run time ([`Schemas`]).

use std::path::PathBuf;

use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions,
};

use super::raw::{decode_raw, to_json};

// ---------------------------------------------------------------------------
// Schemas

/// Why `.proto` files could not be compiled or bytes not decoded with them.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("no .proto files given; pass at least one schema file")]
    NoFiles,
    #[error(
        "{}: .proto file not found (relative paths are tried from the current directory \
         and from each include directory)",
        path.display()
    )]
    FileNotFound { path: PathBuf },
    /// protox's message, located as `file:line:col: what` when it knows.
    #[error("cannot compile the .proto files: {detail}")]
    Compile { detail: String },
    #[error(
        "no message named '{name}' in the compiled .proto files{}",
        suggest(close)
    )]
    UnknownMessage { name: String, close: Vec<String> },
    #[error(
        "message name '{name}' is ambiguous; use the full name: {}",
        candidates.join(", ")
    )]
    AmbiguousMessage {
        name: String,
        candidates: Vec<String>,
    },
    #[error(
        "the bytes are not a valid {message}: {error}; schema-less decoding \
         (decode_raw) shows what they contain"
    )]
    Decode {
        message: String,
        error: prost::DecodeError,
    },
    #[error("cannot render the decoded {message} as JSON: {error}")]
    Json {
        message: String,
        error: serde_json::Error,
    },
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        String::from(" (list them with message_names)")
    } else {
        format!("; did you mean {}?", close.join(", "))
    }
}

/// Message definitions compiled from `.proto` files at run time.
#[derive(Debug, Clone)]
pub struct Schemas {
    pool: DescriptorPool,
}

impl Schemas {
    /// Compiles `files` (and what they import). Imports are resolved from
    /// `includes`, then from each file's own directory, then from the
    /// well-known `google/protobuf/*.proto` files bundled with protox.
    pub fn compile(files: &[PathBuf], includes: &[PathBuf]) -> Result<Schemas, SchemaError> {
        if files.is_empty() {
            return Err(SchemaError::NoFiles);
        }
        let mut dirs: Vec<PathBuf> = includes.to_vec();
        for f in files {
            let found = f.is_file() || includes.iter().any(|i| i.join(f).is_file());
            if !found {
                return Err(SchemaError::FileNotFound { path: f.clone() });
            }
            if f.is_file() {
                let parent = match f.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if !dirs.contains(&parent) {
                    dirs.push(parent);
                }
            }
        }
        let located = |e: protox::Error| SchemaError::Compile {
            // protox's Debug rendering is the located one ("file:line:col: msg").
            detail: format!("{e:?}"),
        };
        let mut compiler = protox::Compiler::new(&dirs).map_err(located)?;
        compiler.include_imports(true);
        compiler.open_files(files).map_err(located)?;
        Ok(Schemas {
            pool: compiler.descriptor_pool(),
        })
    }

    /// Wraps an existing pool (e.g. from a serialized descriptor set).
    pub fn from_pool(pool: DescriptorPool) -> Schemas {
        Schemas { pool }
    }

    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// Full names of all messages (nested ones included), sorted.
    pub fn message_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .pool
            .all_messages()
            .map(|m| m.full_name().to_owned())
            .collect();
        names.sort();
        names
    }

    /// Finds a message by full name (a leading `.` is allowed) or, when
    /// unique, by its short name.
    pub fn message(&self, name: &str) -> Result<MessageDescriptor, SchemaError> {
        let wanted = name.trim().trim_start_matches('.');
        if let Some(m) = self.pool.get_message_by_name(wanted) {
            return Ok(m);
        }
        let mut by_short: Vec<MessageDescriptor> = self
            .pool
            .all_messages()
            .filter(|m| m.name() == wanted)
            .collect();
        if by_short.len() > 1 {
            let mut candidates: Vec<String> =
                by_short.iter().map(|m| m.full_name().to_owned()).collect();
            candidates.sort();
            return Err(SchemaError::AmbiguousMessage {
                name: name.to_owned(),
                candidates,
            });
        }
        by_short.pop().ok_or_else(|| SchemaError::UnknownMessage {
            name: name.to_owned(),
            close: close_matches(wanted, &self.message_names()),
        })
    }

    /// The full name of the message `name` finds (see [`Schemas::message`]):
    /// what a profile's names are resolved to before a capture is read,
    /// so that decoding looks them up directly.
    pub fn resolve(&self, name: &str) -> Result<String, SchemaError> {
        self.message(name).map(|m| m.full_name().to_owned())
    }

    /// Decodes `bytes` as `message_name`.
    pub fn decode_message(
        &self,
        message_name: &str,
        bytes: &[u8],
    ) -> Result<DynamicMessage, SchemaError> {
        let desc = self.message(message_name)?;
        DynamicMessage::decode(desc.clone(), bytes).map_err(|error| SchemaError::Decode {
            message: desc.full_name().to_owned(),
            error,
        })
    }

    /// Decodes `bytes` as `message_name` into JSON: proto field names,
    /// 64-bit integers as numbers, unset fields left out, and fields the
    /// schema does not know decoded schema-less under `"_unknown"`.
    pub fn decode(
        &self,
        message_name: &str,
        bytes: &[u8],
    ) -> Result<serde_json::Value, SchemaError> {
        let msg = self.decode_message(message_name, bytes)?;
        let full_name = msg.descriptor().full_name().to_owned();
        let options = SerializeOptions::new()
            .use_proto_field_name(true)
            .stringify_64_bit_integers(false);
        let mut json = msg
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|error| SchemaError::Json {
                message: full_name,
                error,
            })?;
        attach_unknown(&msg, &mut json);
        Ok(json)
    }
}

/// Adds `"_unknown"` (schema-less) to every JSON object whose message has
/// unknown fields, walking message-typed fields and lists of messages.
fn attach_unknown(msg: &DynamicMessage, json: &mut serde_json::Value) {
    let Some(obj) = json.as_object_mut() else {
        return;
    };
    let mut raw = Vec::new();
    for f in msg.unknown_fields() {
        f.encode(&mut raw);
    }
    if !raw.is_empty() {
        if let Ok(fields) = decode_raw(&raw) {
            obj.insert("_unknown".to_owned(), to_json(&fields));
        }
    }
    for (field, value) in msg.fields() {
        let Some(child) = obj.get_mut(field.name()) else {
            continue;
        };
        match value {
            prost_reflect::Value::Message(m) => attach_unknown(m, child),
            prost_reflect::Value::List(items) => {
                if let Some(arr) = child.as_array_mut() {
                    for (item, j) in items.iter().zip(arr.iter_mut()) {
                        if let prost_reflect::Value::Message(m) = item {
                            attach_unknown(m, j);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Up to five names close to `wanted` (case-insensitive edit distance on
/// the full and the short name, or containment), best first.
fn close_matches(wanted: &str, names: &[String]) -> Vec<String> {
    let w = wanted.to_lowercase();
    let limit = (w.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .filter_map(|n| {
            let full = n.to_lowercase();
            let short = full.rsplit('.').next().unwrap_or(&full).to_owned();
            let d = edit_distance(&w, &full).min(edit_distance(&w, &short));
            let contains = !w.is_empty() && (short.contains(&w) || w.contains(&short));
            (d <= limit || contains).then_some((if contains { d.min(limit) } else { d }, n))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n.clone()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_match_suggestions() {
        let names = vec![
            "micromsg.SyncKey".to_owned(),
            "micromsg.KeyVal".to_owned(),
            "micromsg.NewSyncRequest".to_owned(),
        ];
        assert_eq!(close_matches("Synckey", &names), vec!["micromsg.SyncKey"]);
        assert_eq!(
            close_matches("NewSync", &names)[0],
            "micromsg.NewSyncRequest"
        );
        assert!(close_matches("Zebra", &names).is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
