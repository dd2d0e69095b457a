//! `offshoot psql BRANCH`: replaces itself with `psql` connected to the branch
//! through the proxy. The password travels in `PGPASSWORD`, not on the command
//! line, so other local users cannot read it from the process list.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::Args;

use super::{name, CommandError, Context};

/// Open psql on a branch.
#[derive(Debug, Args)]
#[command(
    long_about = "Open psql on a branch, through the offshoot proxy.\n\n\
        psql comes from the PostgreSQL binaries offshoot uses (OFFSHOOT_PG_BIN, \
        pg_config --bindir, /usr/lib/postgresql/*/bin), else from PATH. Arguments \
        after `--` go to psql unchanged.",
    after_long_help = "\
Examples:
  offshoot psql main
  offshoot psql pr-42 --database app
  offshoot psql pr-42 -- -c 'select count(*) from users'"
)]
pub struct PsqlArgs {
    /// The branch to connect to.
    pub branch: String,
    /// The database to connect to (default: postgres).
    #[arg(long, short = 'd', value_name = "DB")]
    pub database: Option<String>,
    /// Extra arguments for psql, after `--`.
    #[arg(last = true, value_name = "PSQL ARGS")]
    pub psql_args: Vec<OsString>,
}

pub fn run(ctx: &Context, args: PsqlArgs) -> Result<(), CommandError> {
    name::check(&args.branch)?;
    let client = ctx.client()?;
    let uri = client
        .connection_string(&args.branch, args.database.as_deref())?
        .uri;
    let (uri, password) = split_password(&uri);
    let program = psql_path();
    let mut command = std::process::Command::new(&program);
    command.arg(&uri).args(&args.psql_args);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    // exec only returns on failure.
    let source = command.exec();
    Err(CommandError::Exec { program, source })
}

/// psql from the discovered PostgreSQL binaries, else whatever `psql` PATH finds.
fn psql_path() -> PathBuf {
    match offshoot_compute::PgBinaries::discover() {
        Ok(bins) => {
            let psql = bins.tool("psql");
            if psql.is_file() {
                psql
            } else {
                PathBuf::from("psql")
            }
        }
        Err(_) => PathBuf::from("psql"),
    }
}

/// Splits a `postgresql://user:password@host/db` URI into the URI without the
/// password and the (percent-decoded) password.
pub fn split_password(uri: &str) -> (String, Option<String>) {
    let Some(scheme_end) = uri.find("://").map(|i| i + 3) else {
        return (uri.to_string(), None);
    };
    let rest = &uri[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return (uri.to_string(), None);
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return (uri.to_string(), None);
    };
    let password = percent_encoding::percent_decode_str(&userinfo[colon + 1..])
        .decode_utf8_lossy()
        .into_owned();
    let without = format!(
        "{}{}{}",
        &uri[..scheme_end],
        &userinfo[..colon],
        &uri[scheme_end + at..]
    );
    (without, Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_moves_out_of_the_uri() {
        let (uri, password) =
            split_password("postgresql://postgres.pr-1:s%40cr%3At@127.0.0.1:55432/app?x=1");
        assert_eq!(uri, "postgresql://postgres.pr-1@127.0.0.1:55432/app?x=1");
        assert_eq!(password.as_deref(), Some("s@cr:t"));
    }

    #[test]
    fn uris_without_password_stay_as_they_are() {
        for uri in [
            "postgresql://postgres.main@127.0.0.1:55432/postgres",
            "postgresql://127.0.0.1/db",
            "host=127.0.0.1 user=x",
        ] {
            assert_eq!(split_password(uri), (uri.to_string(), None));
        }
    }
}
