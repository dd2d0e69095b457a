//! The results as tables: aligned plain text for the terminal, and Markdown
//! for `results.md` and docs/benchmarks.md.

use crate::bench::results::{Results, Unit};

/// A value in its unit, readable: `12.3 ms`, `1.85 s`, `1532 tps`, `14.2 MiB`.
pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Millis if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Unit::Millis if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Unit::Millis if v >= 10.0 => format!("{v:.1} ms"),
        Unit::Millis => format!("{v:.2} ms"),
        Unit::Tps => format!("{v:.0} tps"),
        Unit::Bytes => format_bytes(v),
    }
}

fn format_bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v;
    let mut i = 0;
    while x >= 1024.0 && i + 1 < UNITS.len() {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{x:.0} B")
    } else {
        format!("{x:.1} {}", UNITS[i])
    }
}

fn ratio_text(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.3}×")
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "NOT MEASURED",
    }
}

/// Rows of cells for the measurements table (header first).
fn measurement_cells(r: &Results) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "#".into(),
        "measured".into(),
        "method".into(),
        "median".into(),
        "min".into(),
        "max".into(),
        "n".into(),
    ]];
    for m in &r.measurements {
        rows.push(vec![
            m.row.to_string(),
            m.what.clone(),
            m.method.clone(),
            format_value(m.unit, m.stats.median),
            format_value(m.unit, m.stats.min),
            format_value(m.unit, m.stats.max),
            m.stats.n.to_string(),
        ]);
    }
    rows
}

fn comparison_cells(r: &Results) -> Vec<Vec<String>> {
    let mut rows = vec![vec!["#".into(), "ratio of medians".into(), "value".into()]];
    for c in &r.comparisons {
        rows.push(vec![
            c.row.to_string(),
            c.description.clone(),
            ratio_text(c.ratio),
        ]);
    }
    rows
}

fn target_cells(r: &Results) -> Vec<Vec<String>> {
    let mut rows = vec![vec!["target".into(), "measured".into(), "verdict".into()]];
    for t in &r.targets {
        rows.push(vec![
            t.description.clone(),
            t.actual.clone(),
            verdict(t.met).into(),
        ]);
    }
    rows
}

fn aligned(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell}{}", " ".repeat(widths[c] - cell.chars().count())))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    out
}

fn markdown_table(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
        if i == 0 {
            out.push_str(&format!("|{}\n", "---|".repeat(row.len())));
        }
    }
    out
}

fn environment_lines(r: &Results) -> Vec<String> {
    let e = &r.environment;
    vec![
        format!("command: {}", e.command),
        format!(
            "machine: {} CPUs ({}), {:.1} GiB RAM, disk {}, {}",
            e.cpus, e.cpu_model, e.memory_gib, e.disk, e.kernel
        ),
        format!("{}", e.postgres_version),
        format!(
            "data: {} GiB (pgbench scale {}); {} runs per figure (median, min, max); pgbench {} clients × {} s",
            crate::bench::args::trim_float(e.size_gib),
            e.pgbench_scale,
            e.runs,
            e.pgbench_clients,
            e.pgbench_seconds
        ),
        format!("started {}, took {:.0} s", e.started_at, e.total_seconds),
    ]
}

/// The whole report for the terminal.
pub fn terminal(r: &Results) -> String {
    let mut out = String::new();
    for line in environment_lines(r) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&aligned(&measurement_cells(r)));
    out.push('\n');
    out.push_str(&aligned(&comparison_cells(r)));
    out.push('\n');
    out.push_str(&aligned(&target_cells(r)));
    if !r.failures.is_empty() {
        out.push_str("\nFAILED steps:\n");
        for f in &r.failures {
            out.push_str(&format!("  - {f}\n"));
        }
    }
    out
}

/// The whole report as Markdown.
pub fn markdown(r: &Results) -> String {
    let mut out = String::from("# offshoot bench results\n\n");
    for line in environment_lines(r) {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str("\n## Measurements\n\n");
    out.push_str(&markdown_table(&measurement_cells(r)));
    out.push_str("\n## Comparisons (computed in the same run)\n\n");
    out.push_str(&markdown_table(&comparison_cells(r)));
    out.push_str("\n## Targets\n\n");
    out.push_str(&markdown_table(&target_cells(r)));
    if !r.failures.is_empty() {
        out.push_str("\n## Failed steps\n\n");
        for f in &r.failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_readable() {
        assert_eq!(format_value(Unit::Millis, 3.456), "3.46 ms");
        assert_eq!(format_value(Unit::Millis, 2500.0), "2.50 s");
        assert_eq!(format_value(Unit::Bytes, 3.0 * 1024.0 * 1024.0), "3.0 MiB");
        assert_eq!(format_value(Unit::Tps, 1234.4), "1234 tps");
    }

    #[test]
    fn aligned_pads_columns() {
        let t = aligned(&[
            vec!["a".into(), "b".into()],
            vec!["long".into(), "x".into()],
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "a     b");
        assert_eq!(lines[2], "long  x");
    }
}
