//! `offshoot bench`: the benchmark harness. On this machine and disk, in one
//! run, it measures offshoot against what users would otherwise do with plain
//! PostgreSQL (same binaries, same settings): copying a database
//! (`CREATE DATABASE … TEMPLATE` with FILE_COPY and WAL_LOG, `pg_dump |
//! pg_restore`), pgbench throughput, storage per copy, many branches, and
//! waking from zero. It prints a table, writes `results.json`, `results.md`
//! and optionally an SVG chart into `--out`, and reports each target as met or
//! MISSED.
//!
//! Scratch state lives in `<out>/.work-<pid>/` (`native/` for the baseline
//! cluster, `home/` for the daemon) and is removed at the end, also on error
//! or Ctrl-C (see `cleanup`).

mod args;
mod cleanup;
mod context;
mod daemon;
mod machine;
mod native;
mod pg;
mod pgbench;
mod progress;
mod report;
mod results;
mod rows;
mod space;
mod stats;
#[cfg(test)]
mod tests;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use args::BenchArgs;

use args::Plan;
use cleanup::Cleanup;
use context::Ctx;
use results::{Environment, Results};

/// Runs `offshoot bench`. `home_override` is the global `--home`: the default
/// `--out` is `<home>/bench`.
pub fn run(args: BenchArgs, home_override: Option<PathBuf>) -> Result<()> {
    let plan = args.into_plan(default_home(home_override).join("bench"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let cleanup = Cleanup::install();
    // Runs the cleanup on every way out of this function, panics included.
    struct Guard(Cleanup);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.run();
        }
    }
    let guard = Guard(cleanup.clone());
    let result = runtime.block_on(run_plan(plan, cleanup));
    drop(guard);
    result
}

/// The home the daemon would use: `--home`, `OFFSHOOT_HOME`, else the XDG data dir.
fn default_home(home_override: Option<PathBuf>) -> PathBuf {
    if let Some(h) = home_override {
        return h;
    }
    if let Some(h) = std::env::var_os("OFFSHOOT_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(d).join("offshoot");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/offshoot")
}

/// A TCP port free on loopback right now.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

/// A random password for the native cluster's `postgres` role.
fn random_password() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Fails clearly when the PostgreSQL user cannot reach `dir` (e.g. under /root).
fn check_reachable(dir: &Path, run_as: Option<(u32, u32)>) -> Result<()> {
    let Some((uid, _)) = run_as else {
        return Ok(());
    };
    for a in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(a) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 && !(meta.uid() == uid && mode & 0o100 != 0) {
            bail!(
                "the postgres user cannot reach {} ({} is mode {:o}); choose --out on a path it can traverse, e.g. under /var/tmp",
                dir.display(),
                a.display(),
                mode & 0o777
            );
        }
    }
    Ok(())
}

async fn run_plan(plan: Plan, cleanup: Cleanup) -> Result<()> {
    let progress = progress::Progress::new();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let tools = pg::PgTools::discover()?;
    std::fs::create_dir_all(&plan.out).with_context(|| format!("create {}", plan.out.display()))?;
    let out = plan.out.canonicalize()?;
    space::check(&out, &plan)?;
    let work = out.join(format!(".work-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    cleanup.add_dir(&work);
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755))?;
    check_reachable(&work.join("native"), tools.run_as)?;
    progress.note(&format!(
        "offshoot bench: {} (scale {}), {} runs, pgbench {} s; results in {}",
        plan.main.label(),
        plan.main.scale,
        plan.runs,
        plan.duration.as_secs(),
        out.display()
    ));

    let step = progress.step("native cluster: initdb and start");
    let mut native =
        native::NativeCluster::init(&tools, &work, free_port()?, &random_password()?, &cleanup)
            .await?;
    native.start("postgres", "SELECT 1").await?;
    step.done();

    let exe = std::env::current_exe().context("find the offshoot binary")?;
    let step = progress.step("offshoot: starting the daemon on a scratch home");
    let daemon = daemon::Daemon::start(
        &exe,
        &work.join("home"),
        free_port()?,
        free_port()?,
        None,
        &cleanup,
    )
    .await;
    let mut failures = Vec::new();
    let daemon = match daemon {
        Ok(d) => {
            step.done();
            Some(d)
        }
        Err(e) => {
            eprintln!("failed");
            let line = format!("starting the offshoot daemon: {e:#} (offshoot rows not measured)");
            progress.note(&format!("FAILED {line}"));
            failures.push(line);
            None
        }
    };

    let mut ctx = Ctx {
        plan: plan.clone(),
        tools,
        progress,
        work,
        native,
        daemon,
        measurements: Vec::new(),
        comparisons: Vec::new(),
        failures,
        loaded: Vec::new(),
    };
    let postgres_version = ctx.tools.version.clone();

    for size in plan.sizes.clone() {
        rows::copy::load(&mut ctx, size).await?;
        if let Err(e) = rows::copy::measure(&mut ctx, size).await {
            ctx.fail(&format!("row 1 at {}", size.label()), &e);
        }
    }
    if let Err(e) = rows::ready::measure(&mut ctx).await {
        ctx.fail("row 2", &e);
    }
    if let Err(e) = rows::throughput::tpcb(&mut ctx).await {
        ctx.fail("row 3", &e);
    }
    if let Err(e) = rows::throughput::select_only(&mut ctx).await {
        ctx.fail("row 4", &e);
    }
    if let Err(e) = rows::storage::measure(&mut ctx).await {
        ctx.fail("row 5", &e);
    }
    if let Err(e) = rows::wake::measure(&mut ctx).await {
        ctx.fail("row 7", &e);
    }
    if let Err(e) = rows::many::measure(&mut ctx).await {
        ctx.fail("row 6", &e);
    }

    let step = ctx
        .progress
        .step("stopping the daemon and the native cluster");
    if let Some(d) = ctx.daemon.as_mut() {
        d.stop().await;
    }
    ctx.native.stop().await;
    step.done();

    let m = machine::describe(&ctx.work);
    let mut measurements = std::mem::take(&mut ctx.measurements);
    measurements.sort_by_key(|m| m.row);
    let mut comparisons = std::mem::take(&mut ctx.comparisons);
    comparisons.sort_by_key(|c| c.row);
    let mut results = Results {
        environment: Environment {
            command: plan.command.clone(),
            cpus: m.cpus,
            cpu_model: m.cpu_model,
            memory_gib: m.memory_gib,
            disk: m.disk,
            kernel: m.kernel,
            postgres_version,
            runs: plan.runs,
            pgbench_seconds: plan.duration.as_secs(),
            pgbench_clients: plan.clients,
            size_gib: plan.main.gib,
            pgbench_scale: plan.main.scale,
            started_at,
            total_seconds: ctx.progress.elapsed().as_secs_f64(),
        },
        measurements,
        comparisons,
        targets: Vec::new(),
        failures: std::mem::take(&mut ctx.failures),
    };
    let sizes: Vec<f64> = plan.sizes.iter().map(|s| s.gib).collect();
    results.targets = report::targets::judge(&results, plan.main.gib, &sizes);
    println!("{}", report::text::terminal(&results));
    for f in report::write_files(&results, &out, plan.plot)? {
        println!("wrote {}", f.display());
    }
    if !results.failures.is_empty() {
        bail!(
            "{} benchmark step(s) failed; see the list above and {}",
            results.failures.len(),
            out.join("results.md").display()
        );
    }
    Ok(())
}
