//! The table for `offshoot status`.

use super::human;
use super::table::fields;
use crate::api::types::Status;

/// One field per line: version, home, addresses, PostgreSQL, counts, storage
/// and the disk's free space.
pub fn status_details(s: &Status) -> String {
    fields(&[
        ("version", s.version.clone()),
        ("home", s.home.clone()),
        ("proxy", s.proxy_addr.clone()),
        ("api", s.api_addr.clone()),
        ("postgres", s.postgres_version.clone()),
        ("branches", s.branches.to_string()),
        ("running", s.computes_running.to_string()),
        ("storage", human::bytes(s.storage_bytes)),
        (
            "disk free",
            s.disk_free_bytes
                .map_or_else(|| "unknown".to_owned(), human::bytes),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_every_field() {
        let s = Status {
            version: "0.1.0".into(),
            home: "/h".into(),
            proxy_addr: "127.0.0.1:55432".into(),
            api_addr: "127.0.0.1:55433".into(),
            postgres_version: "15.8".into(),
            branches: 3,
            computes_running: 1,
            storage_bytes: 40 * 1024 * 1024,
            disk_free_bytes: Some(3 << 30),
        };
        assert_eq!(
            status_details(&s),
            "version:    0.1.0\n\
             home:       /h\n\
             proxy:      127.0.0.1:55432\n\
             api:        127.0.0.1:55433\n\
             postgres:   15.8\n\
             branches:   3\n\
             running:    1\n\
             storage:    40.0 MiB\n\
             disk free:  3.0 GiB\n"
        );
        let unknown = Status {
            disk_free_bytes: None,
            ..s
        };
        assert!(status_details(&unknown).ends_with("disk free:  unknown\n"));
    }
}
