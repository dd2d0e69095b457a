//! `offshoot up`: parses the daemon's flags into [`UpOptions`] and runs the
//! daemon in the foreground until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{CommandError, Context};
use crate::daemon::{self, UpOptions, DEFAULT_API_LISTEN, DEFAULT_LISTEN};
use crate::home::Home;

/// Run the offshoot daemon in the foreground (initialises the home on first use).
#[derive(Debug, Args)]
#[command(
    long_about = "Run the offshoot daemon in the foreground.\n\n\
        On first use it creates the home (the page store, secrets and a `main` branch \
        initialised with initdb). It then serves the PostgreSQL proxy (one endpoint for \
        every branch) and the HTTP API the other commands use, starts each branch's \
        PostgreSQL on its first connection and stops it after the idle timeout. \
        SIGINT or SIGTERM stops every PostgreSQL and unmounts the branches.",
    after_long_help = "\
Examples:
  offshoot up
  offshoot up --home /srv/offshoot --listen 0.0.0.0:5432 --log-format json
  offshoot up --idle-timeout 30s --tls-cert server.crt --tls-key server.key"
)]
pub struct UpArgs {
    /// Where the PostgreSQL proxy listens (port 0 picks a free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Where the HTTP API listens (port 0 picks a free port). Keep it on loopback.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_API_LISTEN)]
    pub api_listen: SocketAddr,
    /// Stop a branch's PostgreSQL after it has had no connection for this long
    /// (`30s`, `5m`, `1h`; `0s` never stops it).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// How long a connection waits for its branch's PostgreSQL to start.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub wake_timeout: Duration,
    /// Log lines for people (`human`) or one JSON object per line (`json`).
    #[arg(long, value_enum, default_value_t = LogFormat::Human, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// A PEM certificate chain for TLS on the proxy (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// How the daemon writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// A duration such as `30s`, `5m`, `2h` or `1day`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (try `30s`, `5m`, `2h`)"))
}

pub fn run(ctx: &Context, args: UpArgs) -> Result<(), CommandError> {
    daemon::up(args.into_options(ctx.home.clone())).map_err(CommandError::Daemon)
}

impl UpArgs {
    /// The daemon's options for `home` with these flags.
    pub fn into_options(self, home: Home) -> UpOptions {
        UpOptions {
            listen: self.listen,
            api_listen: self.api_listen,
            idle_timeout: self.idle_timeout,
            log_json: self.log_format == LogFormat::Json,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            wake_timeout: self.wake_timeout,
            ..UpOptions::new(home)
        }
    }
}
