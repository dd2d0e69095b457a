//! One module per command of the `offshoot` binary, and the flags they share.
//!
//! Parsing is clap derive ([`Cli`]); [`run`] turns the parsed flags into a
//! [`Context`] (the resolved home and output format) and calls the command.
//! Commands print through a writer so that tests can capture what they print,
//! and fail with a [`CommandError`] whose exit code follows docs/contracts.md.

pub mod branch;
pub mod completions;
pub mod connection_string;
pub mod error;
pub mod name;
pub mod psql;
pub mod status;
pub mod up;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use error::{exit, CommandError};

use crate::client::Client;
use crate::home::Home;
use crate::output::OutputFormat;

const EXAMPLES: &str = "\
Examples:
  # Run the daemon (initialises the home on first use)
  offshoot up

  # In another shell: a branch for a pull request, its URL, and a psql session
  offshoot branch create pr-42 --parent main --ttl 72h
  offshoot connection-string pr-42 --database app
  offshoot psql pr-42

  # Everything as JSON for scripts
  offshoot branch list --output json";

/// Instant copy-on-write branches of a PostgreSQL database.
#[derive(Debug, Parser)]
#[command(
    name = "offshoot",
    version,
    propagate_version = true,
    long_about = "Instant copy-on-write branches of a PostgreSQL database.\n\n\
        `offshoot up` runs the daemon: the page store, one PostgreSQL per running \
        branch and a proxy that routes each connection to its branch. The other \
        commands talk to that daemon over its HTTP API.",
    after_long_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The offshoot home directory (store, secrets, daemon.json).
    /// Default: $XDG_DATA_HOME/offshoot, else ~/.local/share/offshoot.
    #[arg(long, global = true, env = "OFFSHOOT_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// How to print results: `table` for people, `json` for programs
    /// (the HTTP API's shapes, see docs/cli.md).
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        default_value_t = OutputFormat::Table,
        value_name = "FORMAT"
    )]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Up(up::UpArgs),
    #[command(subcommand)]
    Branch(branch::BranchCommand),
    ConnectionString(connection_string::ConnectionStringArgs),
    Status(status::StatusArgs),
    Psql(psql::PsqlArgs),
    Completions(completions::CompletionsArgs),
    #[command(after_long_help = "\
Examples:
  offshoot bench --quick
  offshoot bench --size 1 --sizes 1,5 --out bench-results --plot")]
    Bench(crate::bench::BenchArgs),
}

/// What every command gets: where the home is and how to print.
#[derive(Debug, Clone)]
pub struct Context {
    pub home: Home,
    pub output: OutputFormat,
}

impl Context {
    /// The API client for this home's daemon (reads daemon.json and the token).
    pub fn client(&self) -> Result<Client, CommandError> {
        Ok(Client::for_home(&self.home)?)
    }
}

/// Runs the parsed command, printing its result to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CommandError> {
    let global = cli.global;
    let ctx = move || -> Result<Context, CommandError> {
        Ok(Context {
            home: Home::resolve(global.home.as_deref())?,
            output: global.output,
        })
    };
    match cli.command {
        Command::Up(args) => up::run(&ctx()?, args),
        Command::Branch(command) => branch::run(&ctx()?, command, out),
        Command::ConnectionString(args) => connection_string::run(&ctx()?, &args, out),
        Command::Status(args) => status::run(&ctx()?, &args, out),
        Command::Psql(args) => psql::run(&ctx()?, args),
        // Needs no home: works on a machine that never ran `offshoot up`.
        Command::Completions(args) => completions::run(&args, out),
        Command::Bench(args) => crate::bench::run(args, Some(ctx()?.home.root().to_path_buf()))
            .map_err(CommandError::Daemon),
    }
}

#[cfg(test)]
mod tests;
