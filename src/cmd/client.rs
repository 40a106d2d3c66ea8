//! `syncscope client`: the reference client (see `syncscope::net::client`,
//! `syncscope::net::shortclient` for `--short` and `syncscope::net::webclient`
//! for `--web`).
//! Exit codes: 0 done, 1 the send was not confirmed (after its retries, or
//! refused), listen timed out or a web login confirmation was refused,
//! 2 usage or a refused auth or identify.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use syncscope::net::client::{
    self, ClientError, Config, ListenOptions, ListenSink, LoginNotice, SendOptions,
};
use syncscope::net::messages::{ret, ChatMessage, Receipt, ReceiptKind};
use syncscope::net::{media, receipts, shortclient, webclient};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub server: String,
    /// User name to identify as.
    #[arg(long)]
    pub user: String,
    /// The user's password (a server that enforces identity needs it; with --web the client
    /// confirms its own web login with it over the long link).
    #[arg(long, env = "SYNCSCOPE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Device id (the user's first device is its primary).
    #[arg(long, default_value = "phone")]
    pub device: String,
    /// Use the web endpoints (login, webwxinit, synccheck, webwxsync,
    /// webwxsendmsg) as the user's device "web" instead of the long link.
    #[arg(long, conflicts_with_all = ["device", "short"])]
    pub web: bool,
    /// With --web: speak HTTPS to the server, trusting the certificates in this PEM file (a CA,
    /// or `serve --tls-cert`'s own); session secrets go to SSLKEYLOGFILE when it is set.
    #[arg(long, value_name = "CERT", requires = "web")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Use the short link: each request an HTTP POST to /cgi-bin/micromsg-bin/<cgi>
    /// (manualauth, newsendmsg, newsync) with the session cookie, instead of the long link.
    /// `listen` then polls newsync (the short link has no pushes).
    #[arg(long)]
    pub short: bool,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Send a text message; prints {"msg_id", "client_msg_id", "create_time"}.
    Send {
        /// Recipient user name.
        to: String,
        /// Message text.
        text: String,
        /// Resends (same ClientMsgId) after the first attempt when no ack comes.
        #[arg(long, default_value_t = 3, value_name = "N")]
        retries: u32,
        /// Seconds to wait for each answer.
        #[arg(long, default_value_t = 5.0, value_name = "SECS")]
        timeout: f64,
        /// Then wait on the long link, as this device, for the message's receipt and print
        /// {"receipt": ...} (`delivered`: a delivered or read receipt; `read`: a read one);
        /// exit 1 if none comes within --wait-timeout. What the device syncs meanwhile is
        /// confirmed, as `listen` confirms what it shows.
        #[arg(long, value_enum, value_name = "delivered|read")]
        wait: Option<WaitFor>,
        /// Seconds --wait waits for the receipt.
        #[arg(long, default_value_t = 30.0, value_name = "SECS")]
        wait_timeout: f64,
    },
    /// Send an image (PNG or JPEG) over the short link: uploadmsgimg in parts of about 1.5 KB,
    /// several POSTs at once; prints {"msg_id", "client_id", "len", "parts", "sha256",
    /// "thumb_len", ...}.
    SendImage {
        /// Recipient user name.
        to: String,
        /// The image file.
        file: PathBuf,
        /// Attempts after the first when the upload fails (same ClientImgId).
        #[arg(long, default_value_t = 3, value_name = "N")]
        retries: u32,
        /// Seconds to wait for each answer.
        #[arg(long, default_value_t = 5.0, value_name = "SECS")]
        timeout: f64,
    },
    /// Send a voice recording over the long link: uploadvoice in chunks of at most 1.5 KB by
    /// offset, the last with EndFlag 1; prints the same object as send-image.
    SendVoice {
        /// Recipient user name.
        to: String,
        /// The recording (any bytes: the server stores them as they are).
        file: PathBuf,
        /// The recording's length in milliseconds (VoiceLength).
        #[arg(long, default_value_t = 0, value_name = "MS")]
        duration_ms: u32,
        /// Attempts after the first when the upload fails (same ClientMsgId).
        #[arg(long, default_value_t = 3, value_name = "N")]
        retries: u32,
        /// Seconds to wait for each answer.
        #[arg(long, default_value_t = 5.0, value_name = "SECS")]
        timeout: f64,
    },
    /// Print messages as they arrive (reconnects with backoff).
    Listen {
        /// Exit 0 after this many messages.
        #[arg(long, value_name = "N")]
        count: Option<usize>,
        /// Exit 1 if still listening after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// `text` lines or one JSON object per line ({from, to, content, msg_id, client_msg_id}).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Seconds between heartbeats (long link only).
        #[arg(long, default_value_t = 60.0, value_name = "SECS")]
        heartbeat: f64,
        /// Seconds between newsync polls (short link only).
        #[arg(long, default_value_t = 1.0, value_name = "SECS")]
        poll: f64,
        /// Download the image or recording of each media message (getmsgimg, downloadvoice
        /// over the short link) into DIR as MSGID.png|jpg|img|voice, checked against the
        /// sha256 its message names.
        #[arg(long, value_name = "DIR")]
        save: Option<PathBuf>,
        /// Print the receipts that come for this user's messages (text, or ndjson
        /// {"receipt": {kind, msg_id, user, device, time}}); they do not count for --count.
        #[arg(long)]
        receipts: bool,
        /// Report each message read once printed (statusnotify Code 1 over the short link,
        /// for the chat with its sender, up to it): its sender gets a read receipt.
        #[arg(long)]
        read: bool,
    },
    /// Confirm a pending web login by its uuid (the jslogin's, which `client --web` prints
    /// while it waits), as the user's phone confirms a QR code.
    Confirm {
        /// The login's uuid.
        uuid: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WaitFor {
    Delivered,
    Read,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Ndjson,
}

fn seconds(what: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{what}: {s} is not a positive number of seconds"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = Config::new(args.server.clone(), args.user.clone());
    config.device = args.device.clone();
    config.password = args.password.clone();
    if let Some(ca) = &args.tls_ca {
        config.web_tls = Some(
            syncscope::net::server::tls::client_config(ca)
                .map_err(|e| anyhow::anyhow!("--tls-ca: {e}"))?,
        );
    }
    let (user, server) = (args.user.clone(), args.server.clone());
    config.web_login = Some(LoginNotice(Arc::new(move |uuid: &str| {
        eprintln!(
            "syncscope client: web login {uuid} waits for a device of {user} to confirm it: \
             syncscope client --server {server} --user {user} --password ... confirm {uuid}"
        );
    })));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.action {
        Action::Confirm { .. } if args.short || args.web => anyhow::bail!(
            "confirm goes over the long link (cmd 900001, which the short link and the web \
             do not carry): leave out --short and --web"
        ),
        Action::Confirm { uuid } => match rt.block_on(client::confirm_web_login(&config, &uuid)) {
            Ok(()) => {
                eprintln!(
                    "syncscope client: web login {uuid} confirmed for {}",
                    args.user
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(
                e @ ClientError::Refused {
                    ret: ret::NO_SUCH_LOGIN,
                    ..
                },
            ) => {
                eprintln!("syncscope client: {e}");
                Ok(ExitCode::from(1))
            }
            Err(e) => Err(e.into()),
        },
        Action::Send { wait: Some(_), .. } if args.web => {
            anyhow::bail!("--wait listens on the long link: leave out --web")
        }
        Action::Send {
            to,
            text,
            retries,
            timeout,
            wait,
            wait_timeout,
        } => {
            let wait_for = wait
                .map(|w| {
                    seconds("--wait-timeout", wait_timeout).map(|d| {
                        let kind = match w {
                            WaitFor::Delivered => ReceiptKind::Delivered,
                            WaitFor::Read => ReceiptKind::Read,
                        };
                        (kind, d)
                    })
                })
                .transpose()?;
            config.request_timeout = seconds("--timeout", timeout)?;
            config.connect_timeout = config.request_timeout;
            let opts = SendOptions {
                attempts: retries.saturating_add(1),
                ..SendOptions::default()
            };
            let sent = if args.web {
                rt.block_on(webclient::send(&config, &to, &text, &opts))
            } else if args.short {
                rt.block_on(shortclient::send(&config, &to, &text, &opts))
            } else {
                rt.block_on(client::send(&config, &to, &text, &opts))
            };
            match sent {
                Ok(ack) => {
                    {
                        let mut out = io::stdout().lock();
                        syncscope::report::json::to_writer(&mut out, &ack)?;
                        out.write_all(b"\n")?;
                        out.flush()?;
                    }
                    let Some((kind, limit)) = wait_for else {
                        return Ok(ExitCode::SUCCESS);
                    };
                    let deadline = tokio::time::Instant::now() + limit;
                    match rt
                        .block_on(receipts::wait_receipt(&config, ack.msg_id, kind, deadline))?
                    {
                        Some(r) => {
                            let mut out = io::stdout().lock();
                            syncscope::report::json::to_writer(
                                &mut out,
                                &serde_json::json!({ "receipt": r }),
                            )?;
                            out.write_all(b"\n")?;
                            out.flush()?;
                            Ok(ExitCode::SUCCESS)
                        }
                        None => {
                            eprintln!(
                                "syncscope client: no {} receipt for msg_id {} within {wait_timeout} s",
                                kind.name(),
                                ack.msg_id
                            );
                            Ok(ExitCode::from(1))
                        }
                    }
                }
                Err(e) => {
                    eprintln!("syncscope client: send failed: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Action::SendImage {
            to,
            file,
            retries,
            timeout,
        }
        | Action::SendVoice {
            to,
            file,
            retries,
            timeout,
            ..
        } if args.web => {
            let _ = (to, file, retries, timeout);
            anyhow::bail!(
                "media goes over the short link (images) and the long link (voice): leave out \
                 --web"
            )
        }
        Action::SendImage {
            to,
            file,
            retries,
            timeout,
        } => {
            config.request_timeout = seconds("--timeout", timeout)?;
            config.connect_timeout = config.request_timeout;
            let data = std::fs::read(&file)
                .with_context(|| format!("reading the image {}", file.display()))?;
            let opts = SendOptions {
                attempts: retries.saturating_add(1),
                ..SendOptions::default()
            };
            media_sent(rt.block_on(media::send_image(&config, &to, &data, &opts)))
        }
        Action::SendVoice {
            to,
            file,
            duration_ms,
            retries,
            timeout,
        } => {
            config.request_timeout = seconds("--timeout", timeout)?;
            config.connect_timeout = config.request_timeout;
            let data = std::fs::read(&file)
                .with_context(|| format!("reading the recording {}", file.display()))?;
            let opts = SendOptions {
                attempts: retries.saturating_add(1),
                ..SendOptions::default()
            };
            media_sent(rt.block_on(media::send_voice(&config, &to, &data, duration_ms, &opts)))
        }
        Action::Listen {
            count,
            timeout,
            format,
            heartbeat,
            poll,
            save,
            receipts: show_receipts,
            read,
        } => {
            if let Some(dir) = &save {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating --save directory {}", dir.display()))?;
            }
            config.heartbeat = seconds("--heartbeat", heartbeat)?;
            let poll = seconds("--poll", poll)?;
            let deadline = timeout
                .map(|t| seconds("--timeout", t))
                .transpose()?
                .map(|d| tokio::time::Instant::now() + d);
            let opts = ListenOptions { count, deadline };
            let mut sink = Printer {
                who: if args.web {
                    format!("{} (web)", args.user)
                } else if args.short {
                    format!("{} ({}, short link)", args.user, args.device)
                } else {
                    format!("{} ({})", args.user, args.device)
                },
                out: io::stdout().lock(),
                format,
                error: None,
                save: save.map(|dir| (dir, config.clone())),
                receipts: show_receipts,
                read: read.then(|| config.clone()),
            };
            let outcome = if args.web {
                rt.block_on(webclient::listen(&config, &opts, &mut sink))?
            } else if args.short {
                rt.block_on(shortclient::listen(&config, &opts, poll, &mut sink))?
            } else {
                rt.block_on(client::listen(&config, &opts, &mut sink))?
            };
            if let Some(e) = sink.error {
                return Err(e.into());
            }
            if outcome.timed_out && count.is_some() {
                eprintln!(
                    "syncscope client: timed out after {} of {} messages",
                    outcome.received,
                    count.unwrap_or_default()
                );
                return Ok(ExitCode::from(1));
            }
            if outcome.timed_out {
                eprintln!("syncscope client: timed out");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints what `send-image` or `send-voice` gave; exit 1 when refused.
fn media_sent(
    r: Result<media::MediaAck, syncscope::net::client::SendFailed>,
) -> anyhow::Result<ExitCode> {
    match r {
        Ok(ack) => {
            let mut out = io::stdout().lock();
            syncscope::report::json::to_writer(&mut out, &ack)?;
            out.write_all(b"\n")?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("syncscope client: send failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

struct Printer<W: Write> {
    /// `user (device)`, for the status lines on stderr.
    who: String,
    out: W,
    format: Format,
    error: Option<io::Error>,
    /// `listen --save`: the directory, and the settings to download with.
    save: Option<(PathBuf, Config)>,
    /// `listen --receipts`.
    receipts: bool,
    /// `listen --read`: the settings to report reads with.
    read: Option<Config>,
}

/// Runs `f` to completion on a thread of its own with its own runtime
/// (the listener's runtime is busy calling the sink).
fn on_own_runtime<T: Send, F>(f: impl FnOnce() -> F + Send) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime")
                .and_then(|rt| rt.block_on(f()))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread panicked"))?
    })
}

/// Downloads the media of `m` (on a thread of its own with its own
/// runtime: the listener's is busy calling the sink) into `dir`.
fn save_media(dir: &std::path::Path, config: &Config, m: &ChatMessage) -> anyhow::Result<()> {
    let Some(r) = media::MediaRef::of(m) else {
        return Ok(());
    };
    let fetched = on_own_runtime(|| async { Ok(media::fetch(config, m).await?) })?;
    let Some(bytes) = fetched else {
        return Ok(());
    };
    let path = dir.join(format!("{}.{}", m.msg_id, r.extension(&bytes)));
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "syncscope client: saved {} bytes of msg_id {} to {}",
        bytes.len(),
        m.msg_id,
        path.display()
    );
    Ok(())
}

impl<W: Write> Printer<W> {
    fn write(&mut self, m: &ChatMessage) -> io::Result<()> {
        match self.format {
            Format::Ndjson => {
                syncscope::report::json::to_writer(&mut self.out, m)?;
                self.out.write_all(b"\n")?;
            }
            Format::Text => writeln!(
                self.out,
                "{} -> {}: {} (msg_id {})",
                m.from, m.to, m.content, m.msg_id
            )?,
        }
        self.out.flush()
    }
}

impl<W: Write> ListenSink for Printer<W> {
    fn message(&mut self, m: &ChatMessage) -> bool {
        if let Some((dir, config)) = &self.save {
            if let Err(e) = save_media(dir, config, m) {
                self.error = Some(io::Error::other(format!("{e:#}")));
                return false;
            }
        }
        if let Some(config) = &self.read {
            if m.from != config.user {
                let r = on_own_runtime(|| async {
                    Ok(receipts::report_read(config, &m.from, m.msg_id).await?)
                });
                if let Err(e) = r {
                    self.error = Some(io::Error::other(format!("reporting a read: {e:#}")));
                    return false;
                }
            }
        }
        match self.write(m) {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    fn receipt(&mut self, r: &Receipt) {
        if !self.receipts || self.error.is_some() {
            return;
        }
        let written = match self.format {
            Format::Ndjson => syncscope::report::json::to_writer(
                &mut self.out,
                &serde_json::json!({ "receipt": r }),
            )
            .and_then(|()| self.out.write_all(b"\n")),
            Format::Text => writeln!(
                self.out,
                "receipt: msg_id {} {} to {} ({}) at {}",
                r.msg_id,
                r.kind.name(),
                r.user,
                r.device,
                r.time
            ),
        };
        if let Err(e) = written.and_then(|()| self.out.flush()) {
            self.error = Some(e);
        }
    }

    fn connected(&mut self) {
        eprintln!("syncscope client: listening as {}", self.who);
    }

    fn reconnecting(&mut self, error: &ClientError, delay: Duration) {
        eprintln!(
            "syncscope client: {error}; reconnecting in {} ms",
            delay.as_millis()
        );
    }
}
