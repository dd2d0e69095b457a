//! Parsing tests: every command's flags parse into what the command expects,
//! and every command's long help carries examples.

use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::branch::{self, BranchCommand};
use super::{Cli, Command};
use crate::output::instant::parse_rfc3339;
use crate::output::OutputFormat;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("offshoot").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn parse_err(args: &[&str]) -> clap::Error {
    Cli::try_parse_from(std::iter::once("offshoot").chain(args.iter().copied()))
        .expect_err("should not parse")
}

#[test]
fn the_command_tree_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_has_examples_in_its_long_help() {
    fn walk(cmd: &mut clap::Command, path: &str, missing: &mut Vec<String>) {
        let path = format!("{path} {}", cmd.get_name());
        let subs: Vec<_> = cmd.get_subcommands_mut().map(|c| c.clone()).collect();
        if subs.is_empty() {
            let help = cmd.render_long_help().to_string();
            if !help.contains("Examples:") {
                missing.push(path.clone());
            }
        }
        for mut sub in subs {
            if sub.get_name() != "help" {
                walk(&mut sub, &path, missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(&mut Cli::command(), "", &mut missing);
    assert!(missing.is_empty(), "no examples in: {missing:?}");
}

#[test]
fn create_parses_parent_ttl_and_protection() {
    let cli = parse(&[
        "branch",
        "create",
        "pr-42",
        "--parent",
        "main",
        "--ttl",
        "72h",
        "--protected",
        "-o",
        "json",
    ]);
    assert_eq!(cli.global.output, OutputFormat::Json);
    let Command::Branch(BranchCommand::Create(args)) = cli.command else {
        panic!("not create");
    };
    assert_eq!(args.ttl, Some(Duration::from_secs(72 * 3600)));
    let request = branch::create_request(&args).unwrap();
    assert_eq!(request.name, "pr-42");
    assert_eq!(request.parent.as_deref(), Some("main"));
    assert_eq!(request.ttl_seconds, Some(259_200));
    assert_eq!(request.expires_at, None);
    assert_eq!(request.protected, Some(true));
}

#[test]
fn expires_at_is_sent_in_utc() {
    let cli = parse(&[
        "branch",
        "create",
        "x",
        "--expires-at",
        "2025-07-01T02:00:00+02:00",
    ]);
    let Command::Branch(BranchCommand::Create(args)) = cli.command else {
        panic!("not create");
    };
    assert_eq!(
        args.expires_at,
        Some(parse_rfc3339("2025-07-01T00:00:00Z").unwrap())
    );
    let request = branch::create_request(&args).unwrap();
    assert_eq!(request.expires_at.as_deref(), Some("2025-07-01T00:00:00Z"));
    assert_eq!(request.protected, None);
    assert_eq!(request.parent, None);
}

#[test]
fn usage_errors_are_caught_by_the_parser() {
    let conflict = parse_err(&[
        "branch",
        "create",
        "x",
        "--ttl",
        "1h",
        "--expires-at",
        "2030-01-01T00:00:00Z",
    ]);
    assert_eq!(conflict.kind(), clap::error::ErrorKind::ArgumentConflict);
    assert_eq!(conflict.exit_code(), 2);
    let bad_ttl = parse_err(&["branch", "create", "x", "--ttl", "soon"]);
    assert_eq!(bad_ttl.kind(), clap::error::ErrorKind::ValueValidation);
    let bad_time = parse_err(&["branch", "create", "x", "--expires-at", "tomorrow"]);
    assert_eq!(bad_time.kind(), clap::error::ErrorKind::ValueValidation);
    let bad_format = parse_err(&["status", "--output", "yaml"]);
    assert_eq!(bad_format.kind(), clap::error::ErrorKind::InvalidValue);
    let lone_key = parse_err(&["up", "--tls-key", "k.pem"]);
    assert_eq!(
        lone_key.kind(),
        clap::error::ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn bad_branch_names_are_usage_errors_before_any_request() {
    let cli = parse(&["branch", "create", "feature.x"]);
    let Command::Branch(BranchCommand::Create(args)) = cli.command else {
        panic!("not create");
    };
    let err = branch::create_request(&args).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("no dots"), "{err}");
}

#[test]
fn global_flags_work_before_and_after_the_command() {
    let before = parse(&["--home", "/h", "--output", "json", "branch", "list"]);
    let after = parse(&["branch", "list", "--home", "/h", "-o", "json"]);
    for cli in [before, after] {
        assert_eq!(cli.global.home.as_deref(), Some(std::path::Path::new("/h")));
        assert_eq!(cli.global.output, OutputFormat::Json);
    }
}

#[test]
fn up_flags_have_the_documented_defaults() {
    let cli = parse(&["up"]);
    let Command::Up(args) = cli.command else {
        panic!("not up");
    };
    assert_eq!(args.listen.to_string(), "127.0.0.1:55432");
    assert_eq!(args.api_listen.to_string(), "127.0.0.1:55433");
    assert_eq!(args.idle_timeout, Duration::from_secs(300));
    assert_eq!(args.log_format, super::up::LogFormat::Human);
    let cli = parse(&[
        "up",
        "--listen",
        "0.0.0.0:0",
        "--idle-timeout",
        "30s",
        "--log-format",
        "json",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
    ]);
    let Command::Up(args) = cli.command else {
        panic!("not up");
    };
    assert_eq!(args.listen.port(), 0);
    assert_eq!(args.idle_timeout, Duration::from_secs(30));
    assert_eq!(args.log_format, super::up::LogFormat::Json);
    assert!(args.tls_cert.is_some() && args.tls_key.is_some());
}

#[test]
fn psql_passes_everything_after_the_double_dash() {
    let cli = parse(&[
        "psql",
        "pr-1",
        "-d",
        "app",
        "--",
        "-c",
        "select 1",
        "--no-psqlrc",
    ]);
    let Command::Psql(args) = cli.command else {
        panic!("not psql");
    };
    assert_eq!(args.database.as_deref(), Some("app"));
    assert_eq!(args.psql_args, ["-c", "select 1", "--no-psqlrc"]);
}

#[test]
fn completions_need_no_home_and_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let cli = parse(&["completions", shell]);
        let mut out = Vec::new();
        super::run(cli, &mut out).unwrap();
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("connection-string"), "{shell}");
        assert!(script.contains("unprotect"), "{shell}");
    }
}

#[test]
fn up_flags_become_the_daemons_options() {
    let cli = parse(&["up", "--api-listen", "127.0.0.1:0", "--wake-timeout", "5s"]);
    let Command::Up(args) = cli.command else {
        panic!("not up");
    };
    let home = crate::home::Home::at("/h");
    let opts = args.into_options(home.clone());
    assert_eq!(opts.home, home);
    assert_eq!(opts.api_listen.port(), 0);
    assert_eq!(opts.wake_timeout, Duration::from_secs(5));
    assert!(!opts.log_json);
    assert_eq!(opts.tls_cert, None);
}
