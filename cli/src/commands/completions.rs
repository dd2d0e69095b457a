//! `offshoot completions SHELL`: prints a completion script for bash, zsh or fish.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, CommandError};

/// Print a shell completion script.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  offshoot completions bash > ~/.local/share/bash-completion/completions/offshoot
  offshoot completions zsh > \"${fpath[1]}/_offshoot\"
  offshoot completions fish > ~/.config/fish/completions/offshoot.fish")]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: &CompletionsArgs, out: &mut dyn Write) -> Result<(), CommandError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "offshoot", &mut script);
    out.write_all(&script)?;
    Ok(())
}
