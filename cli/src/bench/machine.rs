//! What the report says about the machine: CPUs, memory, kernel, and the disk
//! (device, filesystem, rotational or not) under the benchmark's directory.

use std::path::Path;

pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub disk: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Describes this machine; fields it cannot read are left as "unknown".
pub fn describe(dir: &Path) -> Machine {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split(':')
                .nth(1)
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = format!("Linux {}", read("/proc/sys/kernel/osrelease").trim());
    Machine {
        cpus,
        cpu_model,
        memory_gib,
        kernel,
        disk: disk_of(dir),
    }
}

/// `device (fstype, SSD|HDD)` of the mount holding `dir`.
fn disk_of(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = read("/proc/mounts");
    let best = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .filter(|(_, at, _)| dir.starts_with(at))
        .max_by_key(|(_, at, _)| at.len());
    let Some((dev, _, fstype)) = best else {
        return "unknown".into();
    };
    let name = dev.trim_start_matches("/dev/");
    let rotational = read(&format!("/sys/block/{name}/queue/rotational"));
    let kind = match rotational.trim() {
        "0" => ", SSD/virtual (non-rotational)",
        "1" => ", rotational",
        _ => "",
    };
    format!("{dev} ({fstype}{kind})")
}
