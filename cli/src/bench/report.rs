//! Turning results into what people read: the targets judged against them
//! (`targets`), the terminal and Markdown tables (`text`), and the SVG chart of
//! copy time against database size (`plot`). `results.json` is the
//! [`Results`](super::results::Results) value serialised as is.

pub mod plot;
pub mod targets;
pub mod text;

use std::path::Path;

use anyhow::{Context, Result};

use super::results::Results;

/// Writes `results.json`, `results.md` and (with `plot`) `copy-time-vs-size.svg` into `out`.
pub fn write_files(results: &Results, out: &Path, plot: bool) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let mut written = Vec::new();
    let json = out.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(results)?)
        .with_context(|| format!("write {}", json.display()))?;
    written.push(json);
    let md = out.join("results.md");
    std::fs::write(&md, text::markdown(results))
        .with_context(|| format!("write {}", md.display()))?;
    written.push(md);
    if plot {
        let svg = out.join("copy-time-vs-size.svg");
        std::fs::write(&svg, plot::copy_time_svg(results))
            .with_context(|| format!("write {}", svg.display()))?;
        written.push(svg);
    }
    Ok(written)
}
