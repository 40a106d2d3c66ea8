//! What the replay decodes bodies with when the user gives no schema: the
//! project's own `proto/wechat.proto`, built in, and the reference
//! server's commands mapped to its messages, so that differences are
//! named by field (`BaseResponse.Ret`, not `1.1`).

use std::path::PathBuf;

use prost_reflect::DescriptorPool;
use protox::file::{File, FileResolver, GoogleFileResolver};
use serde_json::Value;

use crate::analyze::{resolve_profile, Options};
use crate::body::messages::CMDID_ADDMSG;
use crate::body::protobuf::Schemas;
use crate::proto::commands::Registry;

const WECHAT_PROTO: &str = include_str!("../../proto/wechat.proto");

/// The long-link cmds of the reference server and their messages, as a
/// profile (applied before the user's, which may override them).
pub const BUILTIN_PROFILE: &str = r#"
[[command]]
cmd = 253
request = "micromsg.ManualAuthRequest"
response = "micromsg.ManualAuthResponse"
[[command]]
cmd = 254
request = "micromsg.AutoAuthRequest"
response = "micromsg.AutoAuthResponse"
[[command]]
cmd = 121
request = "micromsg.NewSyncRequest"
response = "micromsg.NewSyncResponse"
[[command]]
cmd = 237
request = "micromsg.NewSendMsgRequest"
response = "micromsg.NewSendMsgResponse"
[[command]]
cmd = 900001
request = "micromsg.WebLoginConfirmRequest"
response = "micromsg.WebLoginConfirmResponse"
"#;

struct Builtin;

impl FileResolver for Builtin {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == "wechat.proto" {
            File::from_source(name, WECHAT_PROTO)
        } else {
            GoogleFileResolver::new().open_file(name)
        }
    }
}

/// `proto/wechat.proto`, compiled.
pub fn builtin_schemas() -> Schemas {
    let mut c = protox::Compiler::with_file_resolver(Builtin);
    c.include_imports(true);
    c.open_file("wechat.proto")
        .expect("proto/wechat.proto compiles (checked by a test)");
    Schemas::from_pool(c.descriptor_pool())
}

/// Options for a replay: the user's (`--proto`, `--profile`, key log) when
/// given, else the built-in schema and the reference server's mappings.
/// `profile`: the user's profile text, applied over the built-in one.
pub fn options(
    protos: &[PathBuf],
    includes: &[PathBuf],
    profile: Option<&str>,
) -> anyhow::Result<(Options, Registry)> {
    let mut registry = Registry::builtin();
    let schemas = if protos.is_empty() {
        registry.apply_profile(BUILTIN_PROFILE)?;
        builtin_schemas()
    } else {
        Schemas::compile(protos, includes)?
    };
    if let Some(p) = profile {
        registry.apply_profile(p)?;
    }
    resolve_profile(&mut registry, Some(&schemas))?;
    let opts = Options {
        registry: registry.clone(),
        schemas: Some(schemas),
        ..Options::default()
    };
    Ok((opts, registry))
}

/// A pool with the built-in messages (for tests and the mock server).
pub fn builtin_pool() -> DescriptorPool {
    builtin_schemas().pool().clone()
}

/// newsync's CmdList items carry their message as bytes (`CmdBuf.Buffer`):
/// AddMsg items are decoded in place (`CmdBuf.AddMsg`), so that a message
/// is compared field by field (its MsgId and CreateTime volatile). Both
/// drivers (long link, short link) compare through it.
pub fn expand_add_msgs(v: &mut Value, schemas: &Schemas) {
    match v {
        Value::Object(o) => {
            let is_addmsg = o.get("CmdId").and_then(Value::as_i64) == Some(i64::from(CMDID_ADDMSG));
            if is_addmsg {
                let buf = o
                    .get("CmdBuf")
                    .and_then(|b| b.get("Buffer"))
                    .and_then(Value::as_str)
                    .and_then(|s| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.decode(s).ok()
                    });
                if let Some(buf) = buf {
                    if let Ok(m) = schemas.decode("micromsg.AddMsg", &buf) {
                        o.insert("CmdBuf".into(), serde_json::json!({ "AddMsg": m }));
                    }
                }
            }
            for x in o.values_mut() {
                expand_add_msgs(x, schemas);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| expand_add_msgs(x, schemas)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_schema_and_profile_resolve() {
        let (opts, reg) = options(&[], &[], None).unwrap();
        assert_eq!(reg.message(121), Some("micromsg.NewSyncRequest"));
        let s = opts.schemas.unwrap();
        assert!(s.message("NewSendMsgResponse").is_ok());
    }
}
