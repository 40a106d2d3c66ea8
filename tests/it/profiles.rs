//! `--profile` with `--proto` on the real capture: the newsync of the real
//! client decodes with field names on the long link (cmd 121, a business
//! packet inside an MMTLS record) and on the short link (cgi 138), through
//! `proto/wechat.proto` and through a large package-less proto2 dump; and
//! the start-up errors of profiles that do not fit their schemas.

use std::path::Path;

use serde_json::Value;

use crate::cli_analyze::{ndjson, stderr, syncscope, wechat};

const WECHAT_PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/wechat.proto");

/// `frames --format ndjson` of the real capture, decrypted, with a profile
/// (its text) and schemas.
fn real_frames(profile_text: &str, protos: &[&Path]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(&profile, profile_text).unwrap();
    let capture = wechat("capture-logged-in-all-keys.pcapng");
    let keylog = wechat("frida-logged-in-all-keys.log");
    let mut args = vec![
        "frames",
        capture.as_str(),
        "--keylog",
        keylog.as_str(),
        "--format",
        "ndjson",
        "--profile",
        profile.to_str().unwrap(),
    ];
    for p in protos {
        args.extend(["--proto", p.to_str().unwrap()]);
    }
    ndjson(&syncscope(&args))
}

/// The newsync records of the real capture: long link (conn 31, cmd 121
/// and its response) and short link (cgi 138), requests and responses.
fn newsyncs(frames: &[Value]) -> Vec<&Value> {
    let got: Vec<&Value> = frames
        .iter()
        .filter(|f| {
            (f["layer"] == "longlink" && (f["cmd"] == 121 || f["cmd"] == 1_000_000_121u64))
                || (f["layer"] == "shortlink" && f["cmd"] == 138)
        })
        .collect();
    let count = |layer: &str, kind: &str| {
        got.iter()
            .filter(|f| f["layer"] == layer && f["kind"] == kind)
            .count()
    };
    for layer in ["longlink", "shortlink"] {
        for kind in ["request", "response"] {
            assert!(count(layer, kind) >= 1, "no {layer} newsync {kind}");
        }
    }
    assert!(got
        .iter()
        .any(|f| f["layer"] == "longlink" && f["conn"] == 31));
    got
}

/// Checks one newsync body against the field names of a schema: `req`
/// and `resp` name (Selector, KeyBuf) and (Ret, KeyBuf) in that schema,
/// `buffer` the KeyBuf's bytes.
fn assert_named(f: &Value, req: [&str; 2], resp: [&str; 2], buffer: &str) {
    let b = &f["body"];
    assert!(b.get("schema_error").is_none(), "{f}");
    assert!(b.get("protobuf").is_none(), "schema-less: {f}");
    assert_eq!(f["business"]["decrypted"], true, "{f}");
    let [first, keybuf] = if f["kind"] == "request" { req } else { resp };
    if f["kind"] == "request" {
        assert_eq!(b[first], 7, "Selector 7: {f}");
    } else {
        assert_eq!(b[first], 0, "Ret 0: {f}");
    }
    assert_eq!(b[keybuf]["iLen"], 380, "{f}");
    assert!(b[keybuf][buffer].is_string(), "{f}");
}

/// The example profile of README's profile section (its first toml block).
fn readme_profile() -> String {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("A profile names").expect("profile section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let len = section[start..].find("```").expect("end of the toml block");
    let toml = section[start..start + len].to_owned();
    assert!(
        toml.contains("[[cgi]]") && toml.contains("[[command]]"),
        "{toml}"
    );
    toml
}

#[test]
fn real_newsync_decodes_with_wechat_proto_on_both_links() {
    // README's example: the long link with full names, the short link with
    // names without their package.
    let frames = real_frames(&readme_profile(), &[Path::new(WECHAT_PROTO)]);
    for f in newsyncs(&frames) {
        assert_named(f, ["Selector", "KeyBuf"], ["Ret", "KeyBuf"], "Buffer");
        if f["kind"] == "request" {
            assert_eq!(f["body"]["DeviceType"], "android-34", "{f}");
        } else {
            // Fields wechat.proto leaves out stay visible, schema-less.
            assert!(f["body"]["_unknown"].is_object(), "{f}");
        }
    }
}

#[test]
fn a_long_link_profile_alone_decodes_the_long_link_and_a_bad_mapping_says_why() {
    // cmd 121 only (README's example), and the short link's newsync
    // request mapped to a message its bytes are not.
    let frames = real_frames(
        r#"
[[command]]
cmd = 121
request = "micromsg.NewSyncRequest"
response = "micromsg.NewSyncResponse"

[[cgi]]
cgi = 138
request = "micromsg.KeyVal"
"#,
        &[Path::new(WECHAT_PROTO)],
    );
    let all = newsyncs(&frames);
    for f in &all {
        match (f["layer"].as_str(), f["kind"].as_str()) {
            // The cmd's mapping wins over the cgi's on the long link.
            (Some("longlink"), _) => {
                assert_named(f, ["Selector", "KeyBuf"], ["Ret", "KeyBuf"], "Buffer")
            }
            (Some("shortlink"), Some("request")) => {
                let e = f["body"]["schema_error"].as_str().expect("schema_error");
                assert!(e.contains("micromsg.KeyVal"), "{e}");
                assert_eq!(f["body"]["raw"]["protobuf"]["2"], 7, "{f}");
            }
            // Not mapped: schema-less as without a profile.
            _ => assert!(f["body"]["protobuf"].is_object(), "{f}"),
        }
    }
}

/// A package-less proto2 dump shaped like the community ones of the real
/// client (betteray/WeChat's `mm.proto`: 4,611 messages, `required`
/// fields, file options, `import "base.proto"` and `"security.proto"`):
/// filler messages that refer to each other and to the imported files, and
/// the newsync messages with the dump's own field names.
fn write_dump(dir: &Path) -> std::path::PathBuf {
    const OPTIONS: &str =
        "option java_package = \"com.example.mm\";\noption go_package = \"../mmpb\";\n";
    std::fs::write(
        dir.join("base.proto"),
        format!(
            r#"syntax = "proto2";
{OPTIONS}
message SKBuiltinBuffer_t {{
    required  uint32  iLen  = 1;
    optional  bytes  buffer  = 2;
}}
message BaseRequest {{
    required  bytes  sessionKey  = 1;
    required  uint32  uin  = 2;
}}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("security.proto"),
        format!("syntax = \"proto2\";\n{OPTIONS}message SecBlob {{ optional bytes data = 1; }}\n"),
    )
    .unwrap();
    let mut mm = format!(
        "// generated\nsyntax = \"proto2\";\n\
         import \"base.proto\";\nimport \"security.proto\";\n{OPTIONS}"
    );
    const FILLERS: usize = 4600;
    for i in 0..FILLERS {
        let next = (i + 1) % FILLERS;
        mm.push_str(&format!(
            "message Gen{i:04} {{\n    required  uint32  id  = 1;\n    \
             optional  SKBuiltinBuffer_t  buf  = 2;\n    repeated  Gen{next:04}  next  = 3;\n    \
             optional  SecBlob  sec  = 4;\n    \
             optional  BaseRequest  baseRequest  = 5;\n}}\n"
        ));
    }
    mm.push_str(
        r#"message CmdItem {
    required  int32  cmdId  = 1;
    required  SKBuiltinBuffer_t  cmdBuf  = 2;
}
message CmdList {
    required  uint32  count  = 1;
    repeated  CmdItem  list  = 2;
}
message NewSyncRequest {
    required  CmdList  oplog  = 1;
    required  uint32  selector  = 2;
    required  SKBuiltinBuffer_t  keyBuf  = 3;
    optional  uint32  scene  = 4;
    optional  string  deviceType  = 5;
    optional  uint32  syncMsgDigest  = 6;
}
message NewSyncResponse {
    required  int32  ret  = 1;
    required  CmdList  cmdList  = 2;
    required  uint32  continueFlag  = 3;
    required  SKBuiltinBuffer_t  keyBuf  = 4;
    optional  uint32  status  = 5;
    optional  uint32  onlineVersion  = 6;
    optional  uint32  svrTime  = 7;
}
"#,
    );
    let path = dir.join("mm.proto");
    std::fs::write(&path, mm).unwrap();
    path
}

#[test]
fn real_newsync_decodes_with_a_large_package_less_proto2_dump() {
    let dir = tempfile::tempdir().unwrap();
    let mm = write_dump(dir.path());
    let frames = real_frames(
        r#"
[[command]]
cmd = 121
request = "NewSyncRequest"
response = "NewSyncResponse"

[[cgi]]
cgi = 138
request = "NewSyncRequest"
response = "NewSyncResponse"
"#,
        &[&mm],
    );
    for f in newsyncs(&frames) {
        assert_named(f, ["selector", "keyBuf"], ["ret", "keyBuf"], "buffer");
        if f["kind"] == "request" {
            assert_eq!(f["body"]["deviceType"], "android-34", "{f}");
            assert_eq!(f["body"]["syncMsgDigest"], 0, "{f}");
        } else {
            assert!(
                f["body"]["svrTime"].as_u64().unwrap() > 1_700_000_000,
                "{f}"
            );
            assert!(f["body"]["cmdList"].is_object(), "{f}");
        }
    }
}

/// Runs `frames` with a profile and schemas on a capture that does not
/// exist: the exit code and stderr.
fn on_missing_capture(profile: &str, protos: &[&Path]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, profile).unwrap();
    let mut args = vec![
        "frames",
        "/nonexistent/capture.pcap",
        "--profile",
        p.to_str().unwrap(),
    ];
    for proto in protos {
        args.extend(["--proto", proto.to_str().unwrap()]);
    }
    let out = syncscope(&args);
    (out.status.code(), stderr(&out))
}

/// A profile error, which must come before the capture is opened.
fn startup_error(profile: &str, protos: &[&Path]) -> String {
    let (code, err) = on_missing_capture(profile, protos);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        !err.contains("nonexistent"),
        "the capture was read first: {err}"
    );
    assert!(err.contains("p.toml"), "{err}");
    err
}

#[test]
fn an_unknown_message_is_a_startup_error_with_close_matches() {
    let err = startup_error(
        "[[cgi]]\ncgi = 138\nresponse = \"NewSyncResponce\"\n",
        &[Path::new(WECHAT_PROTO)],
    );
    assert!(err.contains("cgi 138 response"), "{err}");
    assert!(err.contains("'NewSyncResponce'"), "{err}");
    assert!(
        err.contains("did you mean micromsg.NewSyncResponse"),
        "{err}"
    );
    // In the dump too, and a name with a package the dump has not.
    let dir = tempfile::tempdir().unwrap();
    let mm = write_dump(dir.path());
    let err = startup_error(
        "[[command]]\ncmd = 121\nrequest = \"micromsg.NewSyncRequest\"\n",
        &[&mm],
    );
    assert!(err.contains("cmd 121 request"), "{err}");
    assert!(err.contains("did you mean NewSyncRequest"), "{err}");
}

#[test]
fn an_ambiguous_message_is_a_startup_error_naming_the_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let mut protos = Vec::new();
    for pkg in ["alpha", "beta"] {
        let p = dir.path().join(format!("{pkg}.proto"));
        std::fs::write(
            &p,
            format!(
                "syntax = \"proto2\";\npackage {pkg};\nmessage Sync {{ optional uint32 a = 1; }}\n"
            ),
        )
        .unwrap();
        protos.push(p);
    }
    let refs: Vec<&Path> = protos.iter().map(|p| p.as_path()).collect();
    let err = startup_error("[[command]]\ncmd = 121\nrequest = \"Sync\"\n", &refs);
    assert!(err.contains("'Sync' is ambiguous"), "{err}");
    assert!(err.contains("alpha.Sync, beta.Sync"), "{err}");
    // The full name is not: the run gets as far as the capture.
    let (code, err) =
        on_missing_capture("[[command]]\ncmd = 121\nrequest = \"beta.Sync\"\n", &refs);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/capture.pcap"), "{err}");
}

#[test]
fn a_profile_mapping_messages_without_proto_uses_the_built_in_schema_or_says_what_to_add() {
    // proto/wechat.proto is built in: its messages need no --proto.
    let (code, err) = on_missing_capture(
        "[[command]]\ncmd = 121\nrequest = \"micromsg.NewSyncRequest\"\n",
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("nonexistent"),
        "the profile was accepted: {err}"
    );
    // A message it does not have.
    let err = startup_error("[[command]]\ncmd = 121\nrequest = \"mm.Other\"\n", &[]);
    assert!(err.contains("cmd 121 request"), "{err}");
    assert!(err.contains("built-in proto/wechat.proto"), "{err}");
    assert!(err.contains("add --proto FILE.proto"), "{err}");
    // A profile that only names things needs no schema.
    let frames = real_frames("[[cgi]]\ncgi = 138\nname = \"sync138\"\n", &[]);
    let named: Vec<&Value> = frames
        .iter()
        .filter(|f| f["layer"] == "shortlink" && f["cmd"] == 138)
        .collect();
    assert!(!named.is_empty());
    for f in named {
        assert_eq!(f["cmd_name"], "sync138", "{f}");
        assert_eq!(f["business"]["cgi_name"], "sync138", "{f}");
    }
}
