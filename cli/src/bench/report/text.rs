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

/// Rows of cells for a table: `header` first, then one row per item.
fn cells<T>(header: &[&str], items: &[T], row: impl Fn(&T) -> Vec<String>) -> Vec<Vec<String>> {
    let head = header.iter().map(|h| h.to_string()).collect();
    std::iter::once(head).chain(items.iter().map(row)).collect()
}

/// Rows of cells for the measurements table (header first).
fn measurement_cells(r: &Results) -> Vec<Vec<String>> {
    let header = ["#", "measured", "method", "median", "min", "max", "n"];
    cells(&header, &r.measurements, |m| {
        vec![
            m.row.to_string(),
            m.what.clone(),
            m.method.clone(),
            format_value(m.unit, m.stats.median),
            format_value(m.unit, m.stats.min),
            format_value(m.unit, m.stats.max),
            m.stats.n.to_string(),
        ]
    })
}

fn comparison_cells(r: &Results) -> Vec<Vec<String>> {
    cells(&["#", "ratio of medians", "value"], &r.comparisons, |c| {
        vec![
            c.row.to_string(),
            c.description.clone(),
            ratio_text(c.ratio),
        ]
    })
}

fn target_cells(r: &Results) -> Vec<Vec<String>> {
    cells(&["target", "measured", "verdict"], &r.targets, |t| {
        vec![
            t.description.clone(),
            t.actual.clone(),
            verdict(t.met).into(),
        ]
    })
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

/// How a report is laid out; everything but the tables themselves is text
/// placed around them.
struct Layout {
    title: &'static str,
    /// Before each environment line.
    bullet: &'static str,
    /// Before the measurements, comparisons and targets tables.
    headings: [&'static str; 3],
    table: fn(&[Vec<String>]) -> String,
    failures_heading: &'static str,
    /// Before each failed step.
    failure_bullet: &'static str,
}

/// The whole report, laid out by `layout`.
fn report(r: &Results, layout: &Layout) -> String {
    let mut out = String::from(layout.title);
    for line in environment_lines(r) {
        out.push_str(&format!(
            "{}{line}
",
            layout.bullet
        ));
    }
    let tables = [measurement_cells(r), comparison_cells(r), target_cells(r)];
    for (heading, rows) in layout.headings.iter().zip(&tables) {
        out.push_str(heading);
        out.push_str(&(layout.table)(rows));
    }
    if !r.failures.is_empty() {
        out.push_str(layout.failures_heading);
        for f in &r.failures {
            out.push_str(&format!("{}{f}\n", layout.failure_bullet));
        }
    }
    out
}

/// The whole report for the terminal.
pub fn terminal(r: &Results) -> String {
    report(
        r,
        &Layout {
            title: "",
            bullet: "",
            headings: ["\n"; 3],
            table: aligned,
            failures_heading: "\nFAILED steps:\n",
            failure_bullet: "  - ",
        },
    )
}

/// The whole report as Markdown.
pub fn markdown(r: &Results) -> String {
    report(
        r,
        &Layout {
            title: "# offshoot bench results\n\n",
            bullet: "- ",
            headings: [
                "\n## Measurements\n\n",
                "\n## Comparisons (computed in the same run)\n\n",
                "\n## Targets\n\n",
            ],
            table: markdown_table,
            failures_heading: "\n## Failed steps\n\n",
            failure_bullet: "- ",
        },
    )
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

    fn small_results() -> Results {
        use crate::bench::results::{Comparison, Environment, Measurement, Target};
        Results {
            environment: Environment {
                command: "offshoot bench".into(),
                cpus: 2,
                cpu_model: "cpu".into(),
                memory_gib: 1.5,
                disk: "ssd".into(),
                kernel: "linux".into(),
                postgres_version: "PostgreSQL 15".into(),
                runs: 1,
                pgbench_seconds: 2,
                pgbench_clients: 4,
                size_gib: 1.0,
                pgbench_scale: 68,
                started_at: "t0".into(),
                total_seconds: 3.0,
            },
            measurements: vec![Measurement {
                row: 1,
                what: "copy".into(),
                method: "api".into(),
                unit: Unit::Millis,
                stats: crate::bench::stats::Stats::single(2.0),
                size_gib: None,
            }],
            comparisons: vec![Comparison {
                row: 1,
                description: "a|b".into(),
                ratio: 12.0,
            }],
            targets: vec![Target {
                description: "fast".into(),
                actual: "1 ms".into(),
                met: Some(true),
            }],
            failures: vec!["step: broke".into()],
        }
    }

    #[test]
    fn terminal_report_layout() {
        let expected = "\
command: offshoot bench
machine: 2 CPUs (cpu), 1.5 GiB RAM, disk ssd, linux
PostgreSQL 15
data: 1 GiB (pgbench scale 68); 1 runs per figure (median, min, max); pgbench 4 clients × 2 s
started t0, took 3 s

#  measured  method  median   min      max      n
─  ────────  ──────  ───────  ───────  ───────  ─
1  copy      api     2.00 ms  2.00 ms  2.00 ms  1

#  ratio of medians  value
─  ────────────────  ─────
1  a|b               12.0×

target  measured  verdict
──────  ────────  ───────
fast    1 ms      met

FAILED steps:
  - step: broke
";
        assert_eq!(terminal(&small_results()), expected);
    }

    #[test]
    fn markdown_report_layout() {
        let expected = "\
# offshoot bench results

- command: offshoot bench
- machine: 2 CPUs (cpu), 1.5 GiB RAM, disk ssd, linux
- PostgreSQL 15
- data: 1 GiB (pgbench scale 68); 1 runs per figure (median, min, max); pgbench 4 clients × 2 s
- started t0, took 3 s

## Measurements

| # | measured | method | median | min | max | n |
|---|---|---|---|---|---|---|
| 1 | copy | api | 2.00 ms | 2.00 ms | 2.00 ms | 1 |

## Comparisons (computed in the same run)

| # | ratio of medians | value |
|---|---|---|
| 1 | a\\|b | 12.0× |

## Targets

| target | measured | verdict |
|---|---|---|
| fast | 1 ms | met |

## Failed steps

- step: broke
";
        assert_eq!(markdown(&small_results()), expected);
    }
}
