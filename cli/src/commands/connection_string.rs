//! `offshoot connection-string BRANCH`: prints the branch's PostgreSQL URL
//! through the proxy (`postgresql://postgres.BRANCH:PASSWORD@HOST:PORT/DB`).

use std::io::Write;

use clap::Args;

use super::{name, CommandError, Context};
use crate::output::{self, OutputFormat};

/// Print a branch's PostgreSQL connection string.
#[derive(Debug, Args)]
#[command(
    long_about = "Print a branch's PostgreSQL connection string (a URL through the \
        offshoot proxy, with the password). The branch is in the user name \
        (`postgres.BRANCH`), so it stays put when a tool reconnects to another \
        database. The table output is the bare URL, ready for `$(...)`.",
    after_long_help = "\
Examples:
  offshoot connection-string pr-42
  DATABASE_URL=$(offshoot connection-string pr-42 --database app) ./migrate
  offshoot connection-string main --output json | jq -r .uri"
)]
pub struct ConnectionStringArgs {
    /// The branch.
    pub branch: String,
    /// The database in the URL (default: postgres).
    #[arg(long, short = 'd', value_name = "DB")]
    pub database: Option<String>,
}

pub fn run(
    ctx: &Context,
    args: &ConnectionStringArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    name::check(&args.branch)?;
    let answer = ctx
        .client()?
        .connection_string(&args.branch, args.database.as_deref())?;
    match ctx.output {
        OutputFormat::Json => output::write_json(out, &answer)?,
        OutputFormat::Table => writeln!(out, "{}", answer.uri)?,
    }
    Ok(())
}
