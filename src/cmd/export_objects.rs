//! `syncscope export-objects CAPTURE DIR`: the images and voice recordings
//! a capture uploads, put together from their parts (see
//! `syncscope::objects`), written to DIR; a report of each object on
//! stdout. Exit 0 when every object is whole, 1 when one has missing or
//! overlapping parts (with `--fail-on-incomplete`), 2 on errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use syncscope::capture::Reader;
use syncscope::proto::keylog::KeyLog;
use syncscope::replay::{self, Recording};

use super::common::DecodeArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Capture file (pcap, pcapng, gzip; `-` for stdin).
    pub capture: PathBuf,
    /// Directory to write the objects to (created if missing).
    pub dir: PathBuf,
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when an object has missing or overlapping parts.
    #[arg(long)]
    pub fail_on_incomplete: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (mut opts, _) = replay::schema::options(&args.decode.protos, &args.decode.includes, None)
        .context("decoding options")?;
    if let Some(k) = &args.decode.keylog {
        opts.keylog = Some(KeyLog::load(k)?);
    }
    let mut reader = Reader::open(&args.capture)?;
    let rec = Recording::read(&mut reader, &mut opts, syncscope::flow::Config::default());
    if let Some(e) = &rec.summary.read_error {
        eprintln!(
            "syncscope: warning: {}: {e} (exported what came before)",
            args.capture.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let objects = syncscope::objects::objects(&rec);
    let mut out = std::io::stdout().lock();
    let mut incomplete = 0;
    for o in &objects {
        let file = if o.complete {
            let path = args.dir.join(o.file_name());
            std::fs::write(&path, &o.bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            Some(path.display().to_string())
        } else {
            incomplete += 1;
            None
        };
        if args.json {
            let mut v = serde_json::to_value(o)?;
            v["file"] = serde_json::json!(file);
            syncscope::report::json::to_writer(&mut out, &v)?;
            writeln!(out)?;
        } else {
            let range = |r: &[(u64, u64)]| {
                r.iter()
                    .map(|(a, b)| format!("{a}..{b}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let status = if o.complete {
                format!(
                    "complete sha256 {}",
                    o.sha256.as_deref().unwrap_or_default()
                )
            } else {
                let mut s = String::from("incomplete");
                if !o.missing.is_empty() {
                    s += &format!(" missing {}", range(&o.missing));
                }
                if !o.overlaps.is_empty() {
                    s += &format!(" overlapping {}", range(&o.overlaps));
                }
                if o.total.is_none() {
                    s += " (length unknown: no last part)";
                }
                s
            };
            writeln!(
                out,
                "{} {} {} -> {}: {} bytes in {} parts ({} repeated), {}{}",
                o.kind,
                o.client_id,
                o.from,
                o.to,
                o.total.map_or("?".to_owned(), |t| t.to_string()),
                o.parts,
                o.repeats,
                status,
                file.map(|f| format!(" -> {f}")).unwrap_or_default()
            )?;
        }
    }
    out.flush()?;
    eprintln!(
        "syncscope: {} objects, {} complete, {} incomplete",
        objects.len(),
        objects.len() - incomplete,
        incomplete
    );
    Ok(if args.fail_on_incomplete && incomplete > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
