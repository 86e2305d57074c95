//! Random sequences of namespace operations against a small in-memory
//! model of the tree: every operation's outcome (errno) and the final tree
//! (names, types, link counts) must agree.

mod common;

use common::*;
use mds::Mdt;
use proptest::prelude::*;
use proto::{Errno, Fid, StripeSpec};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Clone, Debug)]
enum MOp {
    Create(u8, usize),
    Mkdir(u8, usize),
    Unlink(u8, usize),
    Rmdir(u8, usize),
    Link(u8, usize, u8, usize),
    Rename(u8, usize, u8, usize),
}

fn mop() -> impl Strategy<Value = MOp> {
    let n = 0..NAMES.len();
    prop_oneof![
        3 => (any::<u8>(), n.clone()).prop_map(|(d, n)| MOp::Create(d, n)),
        3 => (any::<u8>(), n.clone()).prop_map(|(d, n)| MOp::Mkdir(d, n)),
        2 => (any::<u8>(), n.clone()).prop_map(|(d, n)| MOp::Unlink(d, n)),
        2 => (any::<u8>(), n.clone()).prop_map(|(d, n)| MOp::Rmdir(d, n)),
        1 => (any::<u8>(), n.clone(), any::<u8>(), n.clone()).prop_map(|(a, b, c, d)| MOp::Link(a, b, c, d)),
        4 => (any::<u8>(), n.clone(), any::<u8>(), n).prop_map(|(a, b, c, d)| MOp::Rename(a, b, c, d)),
    ]
}

#[derive(Default)]
struct Model {
    /// Directory fid -> entries (name -> child fid).
    dirs: BTreeMap<Fid, BTreeMap<String, Fid>>,
    /// Directory fid -> its parent.
    parent: HashMap<Fid, Fid>,
    /// File fid -> link count.
    files: HashMap<Fid, u32>,
}

impl Model {
    fn new() -> Model {
        let mut m = Model::default();
        m.dirs.insert(Fid::ROOT, BTreeMap::new());
        m.parent.insert(Fid::ROOT, Fid::ROOT);
        m
    }

    fn pick_dir(&self, sel: u8) -> Fid {
        let all: Vec<Fid> = self.dirs.keys().copied().collect();
        all[sel as usize % all.len()]
    }

    fn entry(&self, d: Fid, n: &str) -> Option<Fid> {
        self.dirs[&d].get(n).copied()
    }

    fn within(&self, mut d: Fid, ancestor: Fid) -> bool {
        loop {
            if d == ancestor {
                return true;
            }
            if d == Fid::ROOT {
                return false;
            }
            d = self.parent[&d];
        }
    }

    /// Every path of every inode below the root, and the root's "".
    fn paths(&self) -> HashMap<Fid, BTreeSet<String>> {
        let mut out: HashMap<Fid, BTreeSet<String>> = HashMap::new();
        out.entry(Fid::ROOT).or_default().insert(String::new());
        let mut todo = vec![(Fid::ROOT, String::new())];
        while let Some((d, path)) = todo.pop() {
            for (name, &child) in &self.dirs[&d] {
                let p = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
                out.entry(child).or_default().insert(p.clone());
                if self.dirs.contains_key(&child) {
                    todo.push((child, p));
                }
            }
        }
        out
    }

    fn drop_entry(&mut self, d: Fid, n: &str) {
        let f = self.dirs.get_mut(&d).unwrap().remove(n).unwrap();
        if self.dirs.contains_key(&f) {
            self.dirs.remove(&f);
            self.parent.remove(&f);
        } else {
            let c = self.files.get_mut(&f).unwrap();
            *c -= 1;
            if *c == 0 {
                self.files.remove(&f);
            }
        }
    }
}

fn run(mdt: &Mdt, m: &mut Model, op: &MOp) -> Result<(), TestCaseError> {
    let r = root();
    let spec = StripeSpec::default();
    match *op {
        MOp::Create(d, n) | MOp::Mkdir(d, n) => {
            let d = m.pick_dir(d);
            let name = NAMES[n];
            let is_dir = matches!(op, MOp::Mkdir(..));
            let got = if is_dir {
                mdt.mkdir(&r, d, name, 0o755).map(|a| a.fid)
            } else {
                mdt.create(&r, d, name, 0o644, &spec).map(|(a, _)| a.fid)
            };
            match m.entry(d, name) {
                Some(_) => prop_assert_eq!(got.map_err(|e| e.errno()), Err(Errno::EEXIST)),
                None => {
                    let fid = got.map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
                    m.dirs.get_mut(&d).unwrap().insert(name.into(), fid);
                    if is_dir {
                        m.dirs.insert(fid, BTreeMap::new());
                        m.parent.insert(fid, d);
                    } else {
                        m.files.insert(fid, 1);
                    }
                }
            }
        }
        MOp::Unlink(d, n) => {
            let d = m.pick_dir(d);
            let got = mdt.unlink(&r, d, NAMES[n]).map_err(|e| e.errno());
            let want = match m.entry(d, NAMES[n]) {
                None => Err(Errno::ENOENT),
                Some(f) if m.dirs.contains_key(&f) => Err(Errno::EISDIR),
                Some(_) => Ok(()),
            };
            prop_assert_eq!(got, want, "{:?}", op);
            if want.is_ok() {
                m.drop_entry(d, NAMES[n]);
            }
        }
        MOp::Rmdir(d, n) => {
            let d = m.pick_dir(d);
            let got = mdt.rmdir(&r, d, NAMES[n]).map_err(|e| e.errno());
            let want = match m.entry(d, NAMES[n]) {
                None => Err(Errno::ENOENT),
                Some(f) if !m.dirs.contains_key(&f) => Err(Errno::ENOTDIR),
                Some(f) if !m.dirs[&f].is_empty() => Err(Errno::ENOTEMPTY),
                Some(_) => Ok(()),
            };
            prop_assert_eq!(got, want, "{:?}", op);
            if want.is_ok() {
                m.drop_entry(d, NAMES[n]);
            }
        }
        MOp::Link(sd, sn, d, n) => {
            let (sd, d) = (m.pick_dir(sd), m.pick_dir(d));
            let Some(src) = m.entry(sd, NAMES[sn]) else { return Ok(()) };
            let got = mdt.link(&r, src, d, NAMES[n]).map(|_| ()).map_err(|e| e.errno());
            let want = if m.dirs.contains_key(&src) {
                Err(Errno::EPERM)
            } else if m.entry(d, NAMES[n]).is_some() {
                Err(Errno::EEXIST)
            } else {
                Ok(())
            };
            prop_assert_eq!(got, want, "{:?}", op);
            if want.is_ok() {
                m.dirs.get_mut(&d).unwrap().insert(NAMES[n].into(), src);
                *m.files.get_mut(&src).unwrap() += 1;
            }
        }
        MOp::Rename(sd, sn, dd, dn) => {
            let (sd, dd) = (m.pick_dir(sd), m.pick_dir(dd));
            let (sn, dn) = (NAMES[sn], NAMES[dn]);
            let got = mdt.rename(&r, sd, sn, dd, dn).map_err(|e| e.errno());
            let want = match m.entry(sd, sn) {
                None => Err(Errno::ENOENT),
                Some(src) => {
                    let src_dir = m.dirs.contains_key(&src);
                    if src_dir && m.within(dd, src) {
                        Err(Errno::EINVAL)
                    } else {
                        match m.entry(dd, dn) {
                            Some(t) if t == src => Ok(false),
                            Some(t) => match (src_dir, m.dirs.contains_key(&t)) {
                                (true, false) => Err(Errno::ENOTDIR),
                                (false, true) => Err(Errno::EISDIR),
                                (true, true) if !m.dirs[&t].is_empty() => Err(Errno::ENOTEMPTY),
                                _ => Ok(true),
                            },
                            None => Ok(true),
                        }
                    }
                }
            };
            prop_assert_eq!(got, want.map(|_| ()), "{:?}", op);
            if want == Ok(true) {
                let src = m.entry(sd, sn).unwrap();
                if m.entry(dd, dn).is_some() {
                    m.drop_entry(dd, dn);
                }
                m.dirs.get_mut(&sd).unwrap().remove(sn);
                m.dirs.get_mut(&dd).unwrap().insert(dn.into(), src);
                if m.dirs.contains_key(&src) {
                    m.parent.insert(src, dd);
                }
            }
        }
    }
    Ok(())
}

fn compare(mdt: &Mdt, m: &Model) -> Result<(), TestCaseError> {
    for (&d, entries) in &m.dirs {
        let got: BTreeMap<String, Fid> = {
            let p = mdt.readdir(&root(), d, 0, 1000).unwrap();
            p.entries.into_iter().map(|e| (String::from_utf8(e.name).unwrap(), e.fid)).collect()
        };
        prop_assert_eq!(&got, entries, "directory {}", d);
        let subdirs = entries.values().filter(|f| m.dirs.contains_key(f)).count() as u32;
        let a = mdt.getattr(d).unwrap();
        prop_assert_eq!(a.nlink, 2 + subdirs);
        prop_assert_eq!(mdt.lookup(&root(), d, "..").unwrap().fid, m.parent[&d]);
    }
    for (&f, &n) in &m.files {
        prop_assert_eq!(mdt.getattr(f).unwrap().nlink, n);
    }
    // Every name of every inode, as fid2path gives them, is a path the
    // tree has.
    for (fid, want) in m.paths() {
        let (first, links) = mdt.fid2path(&root(), fid, 0).unwrap();
        let mut got = BTreeSet::from([first]);
        for link in 1..links {
            got.insert(mdt.fid2path(&root(), fid, link).unwrap().0);
        }
        prop_assert_eq!(links as usize, want.len(), "names of {}", fid);
        prop_assert_eq!(got, want, "paths of {}", fid);
    }
    let s = mdt.statfs().unwrap();
    prop_assert_eq!(s.files - s.ffree, (m.dirs.len() + m.files.len()) as u64);
    let problems = mdt.verify().unwrap();
    prop_assert!(problems.is_empty(), "{:?}", problems);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn namespace_matches_the_model(ops in prop::collection::vec(mop(), 1..60)) {
        let (_d, mdt) = mdt();
        let mut m = Model::new();
        for op in &ops {
            run(&mdt, &mut m, op)?;
        }
        compare(&mdt, &m)?;
    }
}
