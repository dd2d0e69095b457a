//! `offshoot branch …`: create, list, show, delete, reset, rename, protect
//! and unprotect branches through the daemon's API.

use std::io::Write;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::up::parse_duration;
use super::{name, CommandError, Context};
use crate::api::types::{Branch, CreateBranchRequest};
use crate::output::{self, instant, OutputFormat};

/// Create, list, inspect and change branches.
#[derive(Debug, Subcommand)]
pub enum BranchCommand {
    Create(CreateArgs),
    #[command(visible_alias = "ls")]
    List(ListArgs),
    Show(NameArgs),
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    Reset(ResetArgs),
    Rename(RenameArgs),
    Protect(ProtectArgs),
    Unprotect(UnprotectArgs),
}

/// Create a branch: a full copy of its parent, in milliseconds whatever the size.
#[derive(Debug, Args)]
#[command(
    long_about = "Create a branch: a copy-on-write copy of its parent's current \
        schema and data, made as metadata in milliseconds whatever the size.\n\n\
        A branch of a running parent starts with PostgreSQL's crash recovery, which \
        replays the parent's WAL since its last checkpoint: after a bulk load or a \
        large migration that can take seconds. With --checkpoint-parent the daemon \
        first checkpoints a running parent that has written more than 16 MiB of WAL \
        since its last checkpoint; the create then waits for that checkpoint, and \
        the branch answers its first query without the long replay.\n\n\
        Idempotent: when a branch of that name already exists with the same parent, \
        the command succeeds and says it already existed (exit 0), so CI can run it \
        on every push. A branch of that name with another parent is an error.",
    after_long_help = "\
Examples:
  offshoot branch create feature-x
  offshoot branch create pr-42 --parent main --ttl 72h
  offshoot branch create rehearsal --parent staging --expires-at 2025-07-01T00:00:00Z
  offshoot branch create staging --protected --output json
  offshoot branch create after-migration --checkpoint-parent"
)]
pub struct CreateArgs {
    /// The new branch's name.
    pub name: String,
    /// The branch to copy (default: main).
    #[arg(long, short = 'p', value_name = "BRANCH")]
    pub parent: Option<String>,
    /// Delete the branch automatically after this long (`30m`, `72h`, `7days`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expires_at")]
    pub ttl: Option<Duration>,
    /// Delete the branch automatically at this RFC 3339 time (`2025-07-01T00:00:00Z`).
    #[arg(long, value_name = "TIME", value_parser = instant::parse_rfc3339)]
    pub expires_at: Option<SystemTime>,
    /// Protect the branch from delete and reset (see `branch unprotect`).
    #[arg(long)]
    pub protected: bool,
    /// Checkpoint the parent first if it is running and has written more
    /// than 16 MiB of WAL since its last checkpoint: the create waits for the
    /// checkpoint, and the branch starts without replaying that WAL.
    #[arg(long)]
    pub checkpoint_parent: bool,
}

/// List every branch.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  offshoot branch list
  offshoot branch list --output json | jq -r '.branches[].name'")]
pub struct ListArgs {}

/// Show one branch.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  offshoot branch show pr-42
  offshoot branch show pr-42 --output json | jq .expires_at")]
pub struct NameArgs {
    /// The branch.
    pub name: String,
}

/// Delete a branch (its children live on; space comes back after GC).
#[derive(Debug, Args)]
#[command(
    long_about = "Delete a branch. Its PostgreSQL is stopped and its connections end. \
        Children of the branch live on with the pages they still read; the space only \
        this branch used comes back at the next garbage collection. A protected branch \
        is refused (run `offshoot branch unprotect` first).",
    after_long_help = "\
Examples:
  offshoot branch delete pr-42
  offshoot branch delete pr-42 --if-exists"
)]
pub struct DeleteArgs {
    /// The branch.
    pub name: String,
    /// Succeed when the branch does not exist (for cleanup jobs).
    #[arg(long)]
    pub if_exists: bool,
}

/// Reset a branch to its parent's current state (same name, URL and password).
#[derive(Debug, Args)]
#[command(
    long_about = "Reset a branch: throw away its changes and make it a fresh copy of \
        its parent's current state (or of --parent), as metadata. The branch keeps its \
        name, connection string and password; open connections end. A protected \
        branch is refused.",
    after_long_help = "\
Examples:
  offshoot branch reset pr-42
  offshoot branch reset rehearsal --parent staging"
)]
pub struct ResetArgs {
    /// The branch.
    pub name: String,
    /// Reset from this branch instead of the branch's own parent.
    #[arg(long, short = 'p', value_name = "BRANCH")]
    pub parent: Option<String>,
}

/// Rename a branch (connection strings use the new name afterwards).
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  offshoot branch rename feature-x feature-login")]
pub struct RenameArgs {
    /// The branch's current name.
    pub old: String,
    /// Its new name.
    pub new: String,
}

/// Protect a branch from delete and reset.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  offshoot branch protect main")]
pub struct ProtectArgs {
    /// The branch.
    pub name: String,
}

/// Allow delete and reset of a protected branch again.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  offshoot branch unprotect staging")]
pub struct UnprotectArgs {
    /// The branch.
    pub name: String,
}

pub fn run(ctx: &Context, command: BranchCommand, out: &mut dyn Write) -> Result<(), CommandError> {
    match command {
        BranchCommand::Create(args) => create(ctx, args, out),
        BranchCommand::List(_) => {
            let list = ctx.client()?.list_branches()?;
            match ctx.output {
                OutputFormat::Json => output::write_json(out, &list)?,
                OutputFormat::Table => out.write_all(
                    output::branch_table(&list.branches, SystemTime::now()).as_bytes(),
                )?,
            }
            Ok(())
        }
        BranchCommand::Show(args) => {
            name::check(&args.name)?;
            let branch = ctx.client()?.branch(&args.name)?;
            print_branch(ctx, out, &branch, None)
        }
        BranchCommand::Delete(args) => {
            name::check(&args.name)?;
            match ctx.client()?.delete_branch(&args.name) {
                Ok(branch) => {
                    let line = format!("deleted branch {:?}", branch.name);
                    print_branch(ctx, out, &branch, Some(&line))
                }
                Err(e) if args.if_exists && e.is_code("not_found") => match ctx.output {
                    OutputFormat::Json => Ok(output::write_json(out, &serde_json::Value::Null)?),
                    OutputFormat::Table => {
                        Ok(writeln!(out, "branch {:?} did not exist", args.name)?)
                    }
                },
                Err(e) => Err(e.into()),
            }
        }
        BranchCommand::Reset(args) => {
            name::check(&args.name)?;
            if let Some(parent) = &args.parent {
                name::check(parent)?;
            }
            let branch = ctx
                .client()?
                .reset_branch(&args.name, args.parent.as_deref())?;
            let from = args
                .parent
                .as_deref()
                .or(branch.parent.as_deref())
                .unwrap_or("its parent");
            let line = format!(
                "reset branch {:?} to the current state of {from:?}",
                branch.name
            );
            print_branch(ctx, out, &branch, Some(&line))
        }
        BranchCommand::Rename(args) => {
            name::check(&args.old)?;
            name::check(&args.new)?;
            let branch = ctx.client()?.rename_branch(&args.old, &args.new)?;
            let line = format!("renamed branch {:?} to {:?}", args.old, branch.name);
            print_branch(ctx, out, &branch, Some(&line))
        }
        BranchCommand::Protect(args) => set_protected(ctx, &args.name, true, out),
        BranchCommand::Unprotect(args) => set_protected(ctx, &args.name, false, out),
    }
}

fn create(ctx: &Context, args: CreateArgs, out: &mut dyn Write) -> Result<(), CommandError> {
    let request = create_request(&args)?;
    let response = ctx.client()?.create_branch(&request)?;
    match ctx.output {
        OutputFormat::Json => output::write_json(out, &response)?,
        OutputFormat::Table => {
            let b = &response.branch;
            let from = b.parent.as_deref().unwrap_or("-");
            let mut line = if response.created {
                format!("created branch {:?} from {from:?}", b.name)
            } else {
                format!("branch {:?} already existed (parent {from:?})", b.name)
            };
            if let Some(expires) = &b.expires_at {
                line.push_str(&format!(
                    ", expires {}",
                    output::relative(expires, SystemTime::now())
                ));
            }
            if b.protected {
                line.push_str(", protected");
            }
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// Checks the names and turns the flags into the API request.
pub fn create_request(args: &CreateArgs) -> Result<CreateBranchRequest, CommandError> {
    name::check(&args.name)?;
    if let Some(parent) = &args.parent {
        name::check(parent)?;
    }
    let ttl_seconds = match args.ttl {
        Some(ttl) if ttl.is_zero() => {
            return Err(CommandError::Usage("--ttl must be longer than zero".into()))
        }
        Some(ttl) => Some(ttl.as_secs().max(1)),
        None => None,
    };
    Ok(CreateBranchRequest {
        name: args.name.clone(),
        parent: args.parent.clone(),
        ttl_seconds,
        expires_at: args.expires_at.map(instant::format_rfc3339),
        protected: args.protected.then_some(true),
        checkpoint_parent: args.checkpoint_parent.then_some(true),
    })
}

fn set_protected(
    ctx: &Context,
    name: &str,
    protected: bool,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    name::check(name)?;
    let branch = ctx.client()?.set_protected(name, protected)?;
    let line = if protected {
        format!(
            "branch {:?} is protected from delete and reset",
            branch.name
        )
    } else {
        format!("branch {:?} is no longer protected", branch.name)
    };
    print_branch(ctx, out, &branch, Some(&line))
}

/// JSON: the branch; table: `line` if given, else the branch's details.
fn print_branch(
    ctx: &Context,
    out: &mut dyn Write,
    branch: &Branch,
    line: Option<&str>,
) -> Result<(), CommandError> {
    match (ctx.output, line) {
        (OutputFormat::Json, _) => output::write_json(out, branch)?,
        (OutputFormat::Table, Some(line)) => writeln!(out, "{line}")?,
        (OutputFormat::Table, None) => {
            out.write_all(output::branch_details(branch, SystemTime::now()).as_bytes())?
        }
    }
    Ok(())
}
