//! The `offshoot` binary with no daemon running: exit codes, one-line
//! errors, help, completions and a closed stdout. No PostgreSQL, no FUSE.

use std::io::Read;
use std::process::{Command, Stdio};

fn offshoot(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_offshoot"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("OFFSHOOT_HOME")
        .output()
        .expect("run offshoot")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_daemon_command_exits_4_with_a_hint_when_no_daemon_runs() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["status"][..],
        &["branch", "list"],
        &["branch", "create", "x"],
        &["branch", "show", "x", "--output", "json"],
        &["branch", "delete", "x"],
        &["branch", "reset", "x"],
        &["branch", "rename", "x", "y"],
        &["branch", "protect", "x"],
        &["branch", "unprotect", "x"],
        &["connection-string", "x"],
        &["psql", "x"],
    ] {
        let out = offshoot(home.path(), args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {out:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("offshoot: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("offshoot up"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_stale_daemon_json_counts_as_not_running() {
    let home = tempfile::tempdir().unwrap();
    // A pid that cannot exist (above pid_max).
    std::fs::write(
        home.path().join("daemon.json"),
        r#"{"pid": 2147483000, "proxy_addr": "127.0.0.1:1", "api_addr": "127.0.0.1:1", "version": "0"}"#,
    )
    .unwrap();
    let out = offshoot(home.path(), &["branch", "list"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(text(&out.stderr).contains("has exited"), "{out:?}");
}

#[test]
fn bad_names_and_bad_flags_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    let out = offshoot(home.path(), &["branch", "create", "a.b"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("offshoot: invalid branch name \"a.b\""),
        "{err}"
    );
    let out = offshoot(home.path(), &["branch", "create", "x", "--ttl", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let out = offshoot(home.path(), &["branch", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_and_version_succeed() {
    let home = tempfile::tempdir().unwrap();
    let out = offshoot(home.path(), &["branch", "create", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("--ttl") && help.contains("Examples:"),
        "{help}"
    );
    let out = offshoot(home.path(), &["--version"]);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("offshoot {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_offshoot"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn offshoot");
    // Close the read end at once: every write then fails with EPIPE.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "");
}
