//! `offshoot`: the command-line entry point. Thin: parses flags, runs the
//! command from the library, and turns its error into one line on stderr and
//! the exit code of docs/contracts.md. A closed stdout (`| head -1`) is not an
//! error.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use offshoot::commands::{self, exit, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Not locked for the whole run: the daemon's threads may write too.
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let result = commands::run(cli, &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) if e.is_broken_pipe() => ExitCode::from(exit::OK),
        Err(e) => {
            // Whatever was printed before the failure still goes out.
            let _ = out.flush();
            let _ = writeln!(std::io::stderr(), "offshoot: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
