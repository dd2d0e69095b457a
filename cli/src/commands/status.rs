//! `offshoot status`: what the daemon runs (addresses, versions, counts, storage,
//! free disk space).

use std::io::Write;

use clap::Args;

use super::{CommandError, Context};
use crate::output::{self, OutputFormat};

/// Show the daemon's status.
#[derive(Debug, Args)]
#[command(
    long_about = "Show the running daemon's status: version, home, the proxy and API \
        addresses, the PostgreSQL version, how many branches exist and run, the \
        bytes of the page store on disk, and the free space left on that disk (a \
        branch that writes stops when it fills). Exits with 4 when no daemon runs \
        for the home.",
    after_long_help = "\
Examples:
  offshoot status
  offshoot status --home /srv/offshoot --output json"
)]
pub struct StatusArgs {}

pub fn run(ctx: &Context, _args: &StatusArgs, out: &mut dyn Write) -> Result<(), CommandError> {
    let status = ctx.client()?.status()?;
    match ctx.output {
        OutputFormat::Json => output::write_json(out, &status)?,
        OutputFormat::Table => out.write_all(output::status_details(&status).as_bytes())?,
    }
    Ok(())
}
