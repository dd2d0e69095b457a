//! Rendering results for people (tables) and programs (`--output json`).
//!
//! JSON output is exactly the HTTP API's shapes (docs/contracts.md,
//! docs/cli.md), pretty-printed with a final newline. Tables align columns
//! and show sizes in binary units and times relative to now.

mod branch;
pub mod human;
pub mod instant;
mod status;
pub mod table;

use std::io::Write;

use serde::Serialize;

pub use branch::{branch_details, branch_table};
pub use status::status_details;

/// `--output`: who reads what we print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// The API's JSON shapes for programs.
    Json,
}

/// Writes `value` as pretty JSON and a newline.
pub fn write_json(out: &mut dyn Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}

/// An RFC 3339 time from the API as `2025-06-01T12:00:00Z (5 minutes ago)`;
/// text that does not parse is shown as it is.
pub fn time_with_relative(text: &str, now: std::time::SystemTime) -> String {
    match instant::parse_rfc3339(text) {
        Ok(at) => format!(
            "{} ({})",
            instant::format_rfc3339(at),
            human::relative(at, now)
        ),
        Err(_) => text.to_string(),
    }
}

/// An RFC 3339 time from the API relative to now (`5 minutes ago`).
pub fn relative(text: &str, now: std::time::SystemTime) -> String {
    match instant::parse_rfc3339(text) {
        Ok(at) => human::relative(at, now),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_with_a_final_newline() {
        let mut out = Vec::new();
        write_json(&mut out, &serde_json::json!({"uri": "postgresql://x"})).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n  \"uri\": \"postgresql://x\"\n}\n"
        );
    }

    #[test]
    fn unparsable_times_are_shown_verbatim() {
        let now = std::time::SystemTime::now();
        assert_eq!(relative("soon", now), "soon");
        assert_eq!(time_with_relative("soon", now), "soon");
    }
}
