//! Running a child process with a deadline and capturing its output, so that
//! a hung client (psql, pgbench, the CLI) fails its test instead of hanging it.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a finished command printed and how it exited.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// How long the command ran.
    pub elapsed: Duration,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// A child started by [`spawn`]; [`Running::wait`] collects its output.
pub struct Running {
    what: String,
    child: Child,
    started: Instant,
    timeout: Duration,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Starts `cmd` with piped stdout/stderr; it must finish within `timeout`.
pub fn spawn(mut cmd: Command, timeout: Duration) -> Running {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    Running {
        what,
        child,
        started,
        timeout,
        out,
        err,
    }
}

impl Running {
    /// Waits for the command; kills it and panics if it outlives its timeout.
    pub fn wait(mut self) -> CmdOutput {
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => panic!("waiting for {}: {e}", self.what),
            }
            if self.started.elapsed() > self.timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.err.take().and_then(|h| h.join().ok());
                panic!(
                    "{} did not finish within {:?}; stderr: {}",
                    self.what,
                    self.timeout,
                    stderr.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        let stdout = self
            .out
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = self
            .err
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        CmdOutput {
            status,
            stdout,
            stderr,
            elapsed,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to completion within `timeout`.
pub fn run(cmd: Command, timeout: Duration) -> CmdOutput {
    spawn(cmd, timeout).wait()
}
