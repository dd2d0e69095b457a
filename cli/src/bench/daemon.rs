//! The offshoot side of the benchmark: `offshoot up` on a scratch home,
//! started as a child process (the same binary as the harness), and a small
//! HTTP client for the API calls the rows time.
//!
//! The home (`<work>/home/`) is removed by the cleanup guard; the daemon is
//! stopped with SIGINT (its graceful shutdown: computes, then mounts) first.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use offshoot_storage::BranchId;

use super::cleanup::{stop_process, Cleanup};
use super::pg::Target;
use crate::home::Home;

/// The fields of the API's `Branch` the benchmark reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BranchView {
    pub id: BranchId,
    pub state: String,
    pub owned_bytes: u64,
}

/// The fields of the API's `Status` the benchmark reads.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusView {
    pub storage_bytes: u64,
}

#[derive(Deserialize)]
struct CreatedView {
    branch: BranchView,
}

/// A running `offshoot up` and how to reach it.
pub struct Daemon {
    exe: PathBuf,
    home: PathBuf,
    /// The home's layout as the daemon resolves it (its runtime root may be
    /// outside `home`, see [`Home::at`]).
    layout: Home,
    proxy_port: u16,
    api_port: u16,
    pid: Option<u32>,
    token: String,
    password: String,
    agent: ureq::Agent,
    cleanup: Cleanup,
}

impl Daemon {
    /// Starts `exe up` on `home` and waits until its API answers.
    pub async fn start(
        exe: &Path,
        home: &Path,
        proxy_port: u16,
        api_port: u16,
        idle_timeout: Option<Duration>,
        cleanup: &Cleanup,
    ) -> Result<Daemon> {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all(home)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("bench-daemon.log"))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("up")
            .arg("--home")
            .arg(home)
            .arg("--listen")
            .arg(format!("127.0.0.1:{proxy_port}"))
            .arg("--api-listen")
            .arg(format!("127.0.0.1:{api_port}"));
        if let Some(t) = idle_timeout {
            cmd.arg("--idle-timeout")
                .arg(format!("{}s", t.as_secs().max(1)));
        }
        cmd.env("OFFSHOOT_HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {} up", exe.display()))?;
        let pid = child.id();
        cleanup.add_process(pid, "offshoot daemon");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(300)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut daemon = Daemon {
            exe: exe.to_path_buf(),
            home: home.to_path_buf(),
            layout: Home::at(home),
            proxy_port,
            api_port,
            pid: Some(pid),
            token: String::new(),
            password: String::new(),
            agent,
            cleanup: cleanup.clone(),
        };
        daemon.wait_ready(Duration::from_secs(180)).await?;
        Ok(daemon)
    }

    /// Polls until the secrets exist and `GET /v1/status` answers 200.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let secrets = self.home.join("secrets");
        loop {
            if let Some(pid) = self.pid {
                if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err() {
                    bail!("offshoot up exited early; see {}", self.log().display());
                }
            }
            let token = std::fs::read_to_string(secrets.join("api.token"));
            let password = std::fs::read_to_string(secrets.join("postgres.password"));
            if let (Ok(token), Ok(password)) = (token, password) {
                self.token = token.trim().to_string();
                self.password = password.trim().to_string();
                if self.status().await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "offshoot up did not answer on its API within {timeout:?}; see {}",
                    self.log().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> PathBuf {
        self.home.join("bench-daemon.log")
    }

    /// How a client reaches `branch` through the proxy (`ROLE.BRANCH` user name).
    pub fn target(&self, branch: &str) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port: self.proxy_port,
            user: format!("postgres.{branch}"),
            password: self.password.clone(),
        }
    }

    /// How a client reaches the compute of the branch `id` directly, on its
    /// own Unix socket (no proxy): role `postgres`, the same password. The
    /// compute must be running (a connection through the proxy wakes it).
    pub fn socket_target(&self, id: BranchId) -> Target {
        Target {
            host: self.layout.socket_dir(id).display().to_string(),
            port: offshoot_compute::config::SOCKET_PORT,
            user: "postgres".into(),
            password: self.password.clone(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    /// One API call; `body` makes it a POST. Errors carry the API's message.
    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let auth = format!("Bearer {}", self.token);
        let url = self.url(path);
        let response = match (method, body) {
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(b),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            _ => self.agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut response = response.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("read the answer to {method} {path}"))?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", text.trim());
        }
        serde_json::from_str(&text)
            .map_err(|e| anyhow!("{method} {path}: unexpected answer ({e}): {text}"))
    }

    pub async fn status(&self) -> Result<StatusView> {
        tokio::task::block_in_place(|| self.call("GET", "/v1/status", None))
    }

    /// `POST /v1/branches`: the API's branch creation, timed by the caller.
    pub async fn create_branch(&self, name: &str, parent: &str) -> Result<BranchView> {
        let body = serde_json::json!({ "name": name, "parent": parent });
        tokio::task::block_in_place(|| {
            self.call::<CreatedView>("POST", "/v1/branches", Some(body))
                .map(|c| c.branch)
        })
    }

    pub async fn branch(&self, name: &str) -> Result<BranchView> {
        let path = format!("/v1/branches/{}", encode(name));
        tokio::task::block_in_place(|| self.call("GET", &path, None))
    }

    pub async fn delete_branch(&self, name: &str) -> Result<()> {
        let path = format!("/v1/branches/{}", encode(name));
        tokio::task::block_in_place(|| self.call::<serde_json::Value>("DELETE", &path, None))
            .map(drop)
    }

    /// `offshoot branch create NAME --parent P` as a whole process, start to exit.
    pub async fn create_branch_cli(&self, name: &str, parent: &str) -> Result<Duration> {
        let started = Instant::now();
        let out = tokio::process::Command::new(&self.exe)
            .arg("--home")
            .arg(&self.home)
            .args(["branch", "create", name, "--parent", parent])
            .env("OFFSHOOT_HOME", &self.home)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("run offshoot branch create")?;
        let took = started.elapsed();
        if !out.status.success() {
            bail!(
                "offshoot branch create {name} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(took)
    }

    /// Waits until the branch's compute has stopped (scale to zero).
    pub async fn wait_stopped(&self, name: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let b = self.branch(name).await?;
            if b.state == "stopped" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "branch {name} still {} after {timeout:?} (idle timeout not honoured?)",
                    b.state
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the daemon and starts it again on the same home and addresses.
    pub async fn restart(&mut self, idle_timeout: Option<Duration>) -> Result<()> {
        self.stop().await;
        let fresh = Daemon::start(
            &self.exe,
            &self.home,
            self.proxy_port,
            self.api_port,
            idle_timeout,
            &self.cleanup,
        )
        .await?;
        *self = fresh;
        Ok(())
    }

    /// Stops the daemon gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            tokio::task::block_in_place(|| {
                stop_process(pid, "offshoot daemon", Duration::from_secs(120))
            });
            self.cleanup.remove_process(pid);
        }
    }
}

/// Percent-encodes a branch name for a path segment (`/` as `%2F`).
fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}
