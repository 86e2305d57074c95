//! `MGSNID[:MGSNID...]:/FSNAME`, as `mount -t lustre` takes it.

use crate::error::ClientError;
use fabric::Nid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    /// The MGS's NIDs, tried in order (failover pairs are `:`-separated,
    /// NIDs of one node `,`-separated).
    pub mgs: Vec<Nid>,
    pub fsname: String,
}

impl std::str::FromStr for MountSpec {
    type Err = ClientError;

    fn from_str(spec: &str) -> Result<MountSpec, ClientError> {
        let bad =
            |reason: &str| ClientError::MountSpec { spec: spec.to_string(), reason: reason.to_string() };
        let (nids, fsname) = spec.split_once(":/").ok_or_else(|| bad("expected MGSNID:/FSNAME"))?;
        if fsname.is_empty()
            || fsname.len() > 8
            || !fsname.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad("the file system name is 1 to 8 letters, digits or _"));
        }
        let mut mgs = Vec::new();
        for part in nids.split([':', ',']).filter(|p| !p.is_empty()) {
            mgs.push(part.parse::<Nid>().map_err(|e| bad(&e.to_string()))?);
        }
        if mgs.is_empty() {
            return Err(bad("no MGS NID"));
        }
        Ok(MountSpec { mgs, fsname: fsname.to_string() })
    }
}

impl std::fmt::Display for MountSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nids: Vec<String> = self.mgs.iter().map(|n| n.to_string()).collect();
        write!(f, "{}:/{}", nids.join(":"), self.fsname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lustre_mount_specs() {
        let s: MountSpec = "10.0.0.1@o2ib,10.0.0.1@tcp:10.0.0.2@o2ib:/scratch".parse().unwrap();
        assert_eq!(s.mgs.len(), 3);
        assert_eq!(s.fsname, "scratch");
        let s: MountSpec = "127.0.0.1@tcp:/glint".parse().unwrap();
        assert_eq!(s.to_string(), "127.0.0.1@tcp:/glint");
        for bad in
            ["127.0.0.1@tcp", "127.0.0.1@tcp:/", ":/fs", "127.0.0.1@eth:/fs", "127.0.0.1@tcp:/waytoolongname"]
        {
            assert!(bad.parse::<MountSpec>().is_err(), "{bad}");
        }
    }
}
