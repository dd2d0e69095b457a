//! `offshoot`: the command-line entry point. Thin: parses flags and calls the
//! library. Work in progress.

fn main() {
    eprintln!("offshoot: the daemon (`offshoot up`) is not built yet");
    std::process::exit(2);
}
