//! `lfs` against a real file system started in this process (an MGS/MDS
//! and three OSSs on loopback): setstripe, getstripe, directory defaults,
//! df, find, path2fid and fid2path, through the same functions the
//! command runs, without a FUSE mount. The formatting unit tests of the
//! `lfs` modules run here too, as the module is compiled into this test.

#[allow(dead_code)]
#[path = "../src/lfs/mod.rs"]
mod lfs;
// The same in-process file system the client crate tests with.
#[path = "../../client/tests/support/mod.rs"]
mod support;

use client::{Client, process_cred};
use fabric::Errno;
use lfs::{df, fid2path, fids, find, getstripe, setstripe, sizes};
use proto::{StripeSpec, Timestamp};
use support::{FSNAME, TestFs};

/// The (obdidx, objid) rows of an `lfs getstripe FILE` table.
fn table_rows(text: &str) -> Vec<(u32, u64)> {
    text.lines()
        .skip_while(|l| !l.contains("obdidx"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap())
        })
        .collect()
}

fn value_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lfs_against_a_running_file_system() {
    let fs = TestFs::start(3).await;
    let c = Client::mount(&fs.spec()).await.unwrap();
    let cred = process_cred();

    // setstripe -c 2 on a path that does not exist creates the file.
    let two = StripeSpec { stripe_count: Some(2), ..Default::default() };
    let out = setstripe::setstripe(&c, &cred, "/two", two).await.unwrap();
    assert!(matches!(out, setstripe::Outcome::Created { .. }), "{out:?}");
    let text = getstripe::getstripe_text(&c, &cred, "/mnt/g/two", "/two", Default::default()).await.unwrap();
    assert!(text.starts_with("/mnt/g/two\nlmm_stripe_count:  2\nlmm_stripe_size:   1048576\n"), "{text}");
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 2, "{text}");
    assert_ne!(rows[0].0, rows[1].0, "two objects on distinct OSTs: {text}");
    assert_eq!(value_of(&text, "lmm_stripe_offset:"), rows[0].0.to_string());

    // The existing file cannot be restriped.
    let e = setstripe::setstripe(&c, &cred, "/two", two).await.unwrap_err();
    assert_eq!(e.errno(), Errno::EEXIST);

    // A directory's default is inherited by the files created in it.
    let d = StripeSpec { stripe_count: Some(3), stripe_size: Some(128 << 10), stripe_offset: None };
    setstripe::mkdir(&c, &cred, "/d", d).await.unwrap();
    let only_dir = getstripe::Options { dir_only: true, ..Default::default() };
    let text = getstripe::getstripe_text(&c, &cred, "/mnt/g/d", "/d", only_dir).await.unwrap();
    assert_eq!(text, "stripe_count:  3 stripe_size:   131072 pattern:       raid0 stripe_offset: -1\n");
    let (dir, _) = c.resolve(&cred, "/d").await.unwrap();
    c.create(&cred, dir.fid, "inherits", 0o644, StripeSpec::default(), true).await.unwrap();
    let text =
        getstripe::getstripe_text(&c, &cred, "d/inherits", "/d/inherits", Default::default()).await.unwrap();
    assert_eq!(value_of(&text, "lmm_stripe_count:"), "3");
    assert_eq!(value_of(&text, "lmm_stripe_size:"), "131072");
    let mut osts: Vec<u32> = table_rows(&text).iter().map(|r| r.0).collect();
    osts.sort();
    assert_eq!(osts, [0, 1, 2]);

    // setstripe on an existing directory sets its default; -c -1 is every OST.
    setstripe::mkdir(&c, &cred, "/all", StripeSpec::default()).await.unwrap();
    let every = StripeSpec { stripe_count: Some(-1), ..Default::default() };
    let out = setstripe::setstripe(&c, &cred, "/all", every).await.unwrap();
    assert_eq!(out, setstripe::Outcome::DirDefault);
    setstripe::setstripe(&c, &cred, "/all/wide", StripeSpec::default()).await.unwrap();
    let count = getstripe::Options {
        fields: getstripe::Fields { count: true, ..Default::default() },
        ..Default::default()
    };
    let text = getstripe::getstripe_text(&c, &cred, "x", "/all/wide", count).await.unwrap();
    assert_eq!(text, "3\n");

    // getstripe on a directory lists its entries after its own default.
    let text = getstripe::getstripe_text(&c, &cred, "/mnt/g/d/", "/d", Default::default()).await.unwrap();
    assert!(text.starts_with("/mnt/g/d/\nstripe_count:  3 stripe_size:   131072"), "{text}");
    assert!(text.contains("\n/mnt/g/d/inherits\nlmm_stripe_count:  3\n"), "{text}");

    // -y is YAML a reader accepts.
    let yaml = getstripe::Options { yaml: true, ..Default::default() };
    let text = getstripe::getstripe_text(&c, &cred, "two", "/two", yaml).await.unwrap();
    let v: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(v["component0"]["sub_layout"]["lmm_objects"].as_sequence().unwrap().len(), 2);

    // Bad striping is refused with EINVAL before reaching the MDS.
    let bad =
        StripeSpec { stripe_size: Some(sizes::parse_size("size", "4k").unwrap()), ..Default::default() };
    assert_eq!(setstripe::setstripe(&c, &cred, "/bad", bad).await.unwrap_err().errno(), Errno::EINVAL);

    // df has a row for the MDT and every OST, and the summary.
    let report = df::collect(&c).await.unwrap();
    let text = df::text(&report, "/mnt/g", df::Options::default());
    for (i, name) in
        ["testfs-MDT0000_UUID", "testfs-OST0000_UUID", "testfs-OST0001_UUID", "testfs-OST0002_UUID"]
            .iter()
            .enumerate()
    {
        let line = text.lines().nth(i + 1).unwrap();
        assert!(line.starts_with(name), "{text}");
    }
    assert!(text.contains("/mnt/g[OST:2]\n\nfilesystem_summary:"), "{text}");
    let summary = text.lines().find(|l| l.starts_with("filesystem_summary:")).unwrap();
    let total: u64 = summary.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(total > 0, "the OSTs report space: {text}");

    // find by stripe count, type, name and OST.
    let now = Timestamp::now();
    let q =
        find::Query { stripe_count: Some(sizes::parse_count_bound("c", "2").unwrap()), ..Default::default() };
    assert_eq!(find::find(&c, &cred, "/", &q, now).await.unwrap(), ["/two"]);
    let q = find::Query { kind: Some(find::Kind::Dir), ..Default::default() };
    assert_eq!(find::find(&c, &cred, "/", &q, now).await.unwrap(), ["", "/d", "/all"]);
    let q = find::Query { name: Some("*i*".into()), kind: Some(find::Kind::File), ..Default::default() };
    let mut found = find::find(&c, &cred, "/", &q, now).await.unwrap();
    found.sort();
    assert_eq!(found, ["/all/wide", "/d/inherits"]);
    let q = find::Query {
        size: Some(sizes::parse_size_bound("-1k").unwrap()),
        mtime_days: Some(sizes::parse_count_bound("mtime", "-1").unwrap()),
        ost: Some(2),
        ..Default::default()
    };
    let found = find::find(&c, &cred, "/d", &q, now).await.unwrap();
    assert_eq!(found, ["/inherits"], "empty, new, and with an object on OST 2");

    // path2fid and fid2path (the MDS's record of names) agree.
    let fid = fids::path2fid(&c, &cred, "/d/inherits").await.unwrap();
    assert_eq!(fid2path::fid2path(&c, &cred, fid, 0).await.unwrap(), ("/d/inherits".to_string(), 1));
    assert_eq!(fid2path::fid2path(&c, &cred, c.root(), 0).await.unwrap().0, "/");
    let link = proto::MdsRequest::Link { fid, parent: c.root(), name: "again".into() };
    c.md_as(cred.clone(), link).await.unwrap();
    let all: Vec<String> =
        fid2path::paths(&c, &cred, fid, None).await.unwrap().into_iter().map(|p| p.1).collect();
    assert_eq!(all.len(), 2);
    assert!(all.contains(&"/d/inherits".to_string()) && all.contains(&"/again".to_string()), "{all:?}");
    let missing = proto::Fid::new(proto::Fid::MDT_SEQ, 999_999);
    assert_eq!(fid2path::fid2path(&c, &cred, missing, 0).await.unwrap_err().errno(), Errno::ENOENT);
    assert!(fids::instance_name(FSNAME, &fs.spec(), "/mnt/g").starts_with("testfs-"));

    fs.shutdown();
}
