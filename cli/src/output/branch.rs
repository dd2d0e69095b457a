//! Tables for branches: the list (`branch list`) and one branch's details
//! (`branch show` and the commands that change a branch).

use std::time::SystemTime;

use super::table::{fields, Table};
use super::{human, relative, time_with_relative};
use crate::api::types::Branch;

/// `NAME  PARENT  STATE  SIZE  CREATED  EXPIRES  PROTECTED`, one row per branch.
pub fn branch_table(branches: &[Branch], now: SystemTime) -> String {
    let mut table = Table::new([
        "NAME",
        "PARENT",
        "STATE",
        "SIZE",
        "CREATED",
        "EXPIRES",
        "PROTECTED",
    ]);
    for b in branches {
        table.row([
            b.name.clone(),
            b.parent.clone().unwrap_or_else(|| "-".into()),
            b.state.to_string(),
            human::bytes(b.owned_bytes),
            relative(&b.created_at, now),
            b.expires_at
                .as_deref()
                .map_or_else(|| "-".into(), |t| relative(t, now)),
            yes_no(b.protected).into(),
        ]);
    }
    table.render()
}

/// One field per line: name, id, parent, state, size, created, expires, protected.
pub fn branch_details(b: &Branch, now: SystemTime) -> String {
    fields(&[
        ("name", b.name.clone()),
        ("id", b.id.to_string()),
        ("parent", b.parent.clone().unwrap_or_else(|| "-".into())),
        ("state", b.state.to_string()),
        ("size", human::bytes(b.owned_bytes)),
        ("created", time_with_relative(&b.created_at, now)),
        (
            "expires",
            b.expires_at
                .as_deref()
                .map_or_else(|| "never".into(), |t| time_with_relative(t, now)),
        ),
        ("protected", yes_no(b.protected).into()),
    ])
}

fn yes_no(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::ComputeState;
    use crate::output::instant::parse_rfc3339;

    fn branch(name: &str, parent: Option<&str>) -> Branch {
        Branch {
            id: 7,
            name: name.into(),
            parent: parent.map(Into::into),
            created_at: "2025-06-01T10:00:00Z".into(),
            state: ComputeState::Stopped,
            owned_bytes: 8192,
            expires_at: None,
            protected: false,
        }
    }

    fn noon() -> SystemTime {
        parse_rfc3339("2025-06-01T12:00:00Z").unwrap()
    }

    #[test]
    fn the_list_aligns_and_humanises() {
        let mut main = branch("main", None);
        main.state = ComputeState::Running;
        main.owned_bytes = 25 * 1024 * 1024;
        main.protected = true;
        let mut pr = branch("pr-42", Some("main"));
        pr.expires_at = Some("2025-06-04T12:00:00Z".into());
        assert_eq!(
            branch_table(&[main, pr], noon()),
            "NAME   PARENT  STATE    SIZE      CREATED      EXPIRES    PROTECTED\n\
             main   -       running  25.0 MiB  2 hours ago  -          yes\n\
             pr-42  main    stopped  8.0 KiB   2 hours ago  in 3 days  no\n"
        );
    }

    #[test]
    fn details_show_absolute_and_relative_times() {
        let mut b = branch("pr-42", Some("main"));
        b.expires_at = Some("2025-06-01T14:00:00+00:00".into());
        assert_eq!(
            branch_details(&b, noon()),
            "name:       pr-42\n\
             id:         7\n\
             parent:     main\n\
             state:      stopped\n\
             size:       8.0 KiB\n\
             created:    2025-06-01T10:00:00Z (2 hours ago)\n\
             expires:    2025-06-01T14:00:00Z (in 2 hours)\n\
             protected:  no\n"
        );
        let forever = branch("main", None);
        assert!(branch_details(&forever, noon()).contains("expires:    never\n"));
    }
}
