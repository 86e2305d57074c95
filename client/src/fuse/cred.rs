//! The credentials of the process behind a FUSE request: the uid and gid
//! the kernel puts in the request header, and the supplementary groups,
//! which it does not send, read from `/proc/PID/status`.

use proto::Cred;

/// The ids of a request, taken on the dispatch thread (the request itself
/// cannot cross into the task that serves it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl Caller {
    pub fn from_request(req: &fuser::Request) -> Caller {
        Caller { uid: req.uid(), gid: req.gid(), pid: req.pid() }
    }

    /// The caller's credentials. A process that is gone (or a request the
    /// kernel makes on its own, with pid 0) has no supplementary groups.
    pub fn cred(&self) -> Cred {
        let groups = if self.pid == 0 {
            Vec::new()
        } else {
            std::fs::read_to_string(format!("/proc/{}/status", self.pid))
                .map(|s| groups_from_status(&s))
                .unwrap_or_default()
        };
        Cred { uid: self.uid, gid: self.gid, groups }
    }
}

/// The `Groups:` line of a `/proc/PID/status` file. Malformed numbers are
/// skipped rather than trusted.
pub(crate) fn groups_from_status(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|rest| rest.split_whitespace().filter_map(|g| g.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_groups_line() {
        let s = "Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1000 \nNgid:\t0\n";
        assert_eq!(groups_from_status(s), vec![4, 24, 27, 1000]);
        assert_eq!(groups_from_status("Groups:\t\n"), Vec::<u32>::new());
        assert_eq!(groups_from_status("Name:\tx\n"), Vec::<u32>::new());
        assert_eq!(groups_from_status("Groups:\t5 x -1 99999999999 7\n"), vec![5, 7]);
    }

    #[test]
    fn this_process_groups_match_getgroups() {
        let me = Caller { uid: 0, gid: 0, pid: std::process::id() };
        let mut want = crate::process_cred().groups;
        let mut got = me.cred().groups;
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    proptest! {
        #[test]
        fn any_status_text_parses_without_panic(s in ".*") {
            let _ = groups_from_status(&s);
        }

        #[test]
        fn round_trips_group_lists(groups in prop::collection::vec(any::<u32>(), 0..64)) {
            let line: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            let status = format!("Name:\tx\nGroups:\t{} \nVmRSS:\t1 kB\n", line.join(" "));
            prop_assert_eq!(groups_from_status(&status), groups);
        }
    }
}
