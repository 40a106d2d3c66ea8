//! `syncscope dissector --lua`: the Wireshark / tshark Lua dissector, from
//! the analyzer's command table (and a profile's names).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use syncscope::proto::commands::Registry;

#[derive(clap::Args)]
pub struct Args {
    /// Write a Lua dissector (the only kind so far) to standard output or --output.
    #[arg(long, required = true)]
    pub lua: bool,
    /// TCP port the dissector registers on (repeatable) [default: 8080].
    #[arg(long = "port", value_name = "N")]
    pub ports: Vec<u16>,
    /// Profile whose cmd names the dissector uses too (`[[command]]` entries).
    #[arg(long, value_name = "FILE.toml")]
    pub profile: Option<PathBuf>,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE.lua")]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut registry = Registry::builtin();
    if let Some(p) = &args.profile {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read profile {}", p.display()))?;
        registry
            .apply_profile(&text)
            .with_context(|| format!("profile {}", p.display()))?;
    }
    let ports = if args.ports.is_empty() {
        vec![8080]
    } else {
        args.ports.clone()
    };
    let profile = args.profile.as_ref().map(|p| p.display().to_string());
    let lua = syncscope::report::lua::dissector(&registry, &ports, profile.as_deref());
    match &args.output {
        Some(path) => std::fs::write(path, lua).with_context(|| {
            format!(
                "--output {}: cannot write the dissector (is the directory there and writable?)",
                path.display()
            )
        })?,
        None => std::io::stdout().lock().write_all(lua.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
