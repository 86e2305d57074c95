//! `lfs getstripe`: a file's layout or a directory's default striping, in
//! the text lfs prints (so scripts that parse Lustre's output read ours):
//! `lmm_*` keys and the `obdidx objid objid group` table for files, the
//! same keys without `lmm_` on one line for directories, and with `-y`
//! the composite-layout YAML (`lcm_*`, `component0:`, `sub_layout:`).

use super::error::LfsError;
use client::Client;
use proto::layout::EOF;
use proto::{Attr, Cred, Fid, Layout, MdsReply, MdsRequest, Pattern, StripeObject, StripeSpec};

/// Which values `-c`, `-S`, `-i` asked for; none means the full layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub count: bool,
    pub size: bool,
    pub offset: bool,
}

impl Fields {
    fn all(&self) -> bool {
        !(self.count || self.size || self.offset)
    }

    fn selected(&self) -> usize {
        [self.count, self.size, self.offset].iter().filter(|b| **b).count()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub fields: Fields,
    /// `-d`: a directory's own default only, not its entries.
    pub dir_only: bool,
    pub yaml: bool,
}

/// What a path holds, as far as striping goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Striping {
    File {
        attr: Attr,
        layout: Layout,
    },
    /// A directory and the striping its new files get.
    Dir {
        attr: Attr,
        default: StripeSpec,
    },
    /// Symlinks, devices: no layout.
    None {
        attr: Attr,
    },
}

/// One component's striping, flattened for printing.
struct Sub<'a> {
    /// A directory's default may be -1: all OSTs.
    count: i64,
    size: u64,
    /// The OST of the first object, as lfs prints it (not the requested offset).
    offset: i64,
    objects: &'a [StripeObject],
}

fn sub(p: &Pattern) -> Sub<'_> {
    match p {
        Pattern::Raid0(r) => Sub {
            count: r.objects.len() as i64,
            size: r.stripe_size,
            offset: r.objects.first().map(|o| o.ost_idx as i64).unwrap_or(-1),
            objects: &r.objects,
        },
    }
}

const NO_COMPONENT: Sub<'static> = Sub { count: 0, size: 0, offset: -1, objects: &[] };

/// C's `%#x`: no `0x` before a zero.
fn c_hex(v: u64) -> String {
    if v == 0 { "0".into() } else { format!("{v:#x}") }
}

/// A FID without brackets, as lfs's YAML writes `l_fid`.
fn fid_nobrace(f: Fid) -> String {
    format!("{}:{:#x}:{:#x}", c_hex(f.seq), f.oid, f.ver)
}

/// The labelled lines or bare values of the selected fields.
fn selected_lines(prefix: &str, s: &Sub<'_>, f: Fields, sep: &str) -> String {
    let labelled = f.selected() > 1;
    let mut parts = Vec::new();
    let mut push = |on: bool, key: &str, v: String| {
        if on {
            parts.push(if labelled { format!("{prefix}{key}{v}") } else { v });
        }
    };
    push(f.count, "stripe_count:  ", s.count.to_string());
    push(f.size, "stripe_size:   ", s.size.to_string());
    push(f.offset, "stripe_offset: ", s.offset.to_string());
    parts.join(sep) + "\n"
}

/// `lfs getstripe FILE` (and `-c`/`-S`/`-i`, `-y`).
pub fn file_text(path: &str, layout: &Layout, o: Options) -> String {
    if o.yaml {
        return file_yaml(layout);
    }
    let s = layout.components.first().map(|c| sub(&c.pattern)).unwrap_or(NO_COMPONENT);
    if !o.fields.all() {
        return selected_lines("lmm_", &s, o.fields, "\n");
    }
    let mut out = format!(
        "{path}\nlmm_stripe_count:  {}\nlmm_stripe_size:   {}\nlmm_pattern:       raid0\n\
         lmm_layout_gen:    {}\nlmm_stripe_offset: {}\n",
        s.count, s.size, layout.generation, s.offset
    );
    out.push_str("\tobdidx\t\t objid\t\t objid\t\t group\n");
    for o in s.objects {
        let oid = o.fid.oid as u64;
        out.push_str(&format!(
            "\t{:>6}\t{:>14}\t{:>13}\t{:>14}\n",
            o.ost_idx,
            oid,
            c_hex(oid),
            c_hex(o.fid.seq)
        ));
    }
    out.push('\n');
    out
}

/// `lfs getstripe -y FILE`: the composite layout header, then each
/// component and its sub-layout, indented as lfs indents them.
pub fn file_yaml(layout: &Layout) -> String {
    let mut out = format!(
        "  lcm_layout_gen:    {}\n  lcm_mirror_count:  1\n  lcm_entry_count:   {}\n",
        layout.generation,
        layout.components.len()
    );
    for (i, c) in layout.components.iter().enumerate() {
        let s = sub(&c.pattern);
        let end = if c.end == EOF { "EOF".to_string() } else { c.end.to_string() };
        out.push_str(&format!(
            "  component{i}:\n    lcme_id:             {}\n    lcme_mirror_id:      0\n    \
             lcme_flags:          init\n    lcme_extent.e_start: {}\n    lcme_extent.e_end:   {end}\n    \
             sub_layout:\n      lmm_stripe_count:  {}\n      lmm_stripe_size:   {}\n      \
             lmm_pattern:       raid0\n      lmm_layout_gen:    {}\n      lmm_stripe_offset: {}\n",
            i + 1,
            c.start,
            s.count,
            s.size,
            layout.generation,
            s.offset
        ));
        if !s.objects.is_empty() {
            out.push_str("      lmm_objects:\n");
            for o in s.objects {
                out.push_str(&format!(
                    "      - l_ost_idx: {}\n        l_fid:     {}\n",
                    o.ost_idx,
                    fid_nobrace(o.fid)
                ));
            }
        }
    }
    out
}

fn dir_values(d: &StripeSpec) -> Sub<'static> {
    Sub {
        count: d.stripe_count.map(i64::from).unwrap_or(0),
        size: d.stripe_size.unwrap_or(0),
        offset: d.stripe_offset.map(i64::from).unwrap_or(-1),
        objects: &[],
    }
}

/// `lfs getstripe -d DIR`: the default, on one line (one key a line with `-y`).
pub fn dir_text(default: &StripeSpec, o: Options) -> String {
    let s = dir_values(default);
    let sep = if o.yaml { "\n" } else { " " };
    if !o.fields.all() {
        return selected_lines("", &s, o.fields, sep);
    }
    [
        format!("stripe_count:  {}", s.count),
        format!("stripe_size:   {}", s.size),
        "pattern:       raid0".to_string(),
        format!("stripe_offset: {}", s.offset),
    ]
    .join(sep)
        + "\n"
}

/// What `path` (inside the file system) holds.
pub async fn striping(c: &Client, cred: &Cred, path: &str) -> Result<Striping, LfsError> {
    let (attr, layout) = c.resolve(cred, path).await?;
    striping_of(c, cred, attr, layout).await
}

async fn striping_of(
    c: &Client,
    cred: &Cred,
    attr: Attr,
    layout: Option<Layout>,
) -> Result<Striping, LfsError> {
    Ok(match layout {
        Some(layout) if attr.is_reg() => Striping::File { attr, layout },
        _ if attr.is_dir() => Striping::Dir { attr, default: dir_default(c, cred, attr.fid).await? },
        _ => Striping::None { attr },
    })
}

/// The striping new files in `dir` get (its own default, else the file
/// system's).
pub async fn dir_default(c: &Client, cred: &Cred, dir: Fid) -> Result<StripeSpec, LfsError> {
    match c.md_as(cred.clone(), MdsRequest::GetDirStripe { fid: dir }).await? {
        MdsReply::DirStripe { stripe } => Ok(stripe),
        _ => Err(client::ClientError::UnexpectedReply { service: "MDS" }.into()),
    }
}

/// The whole `lfs getstripe PATH` output for one argument: `shown` is the
/// path as the user wrote it, `path` its place in the file system. A
/// directory without `-d` is followed by each of its entries, as lfs does.
pub async fn getstripe_text(
    c: &Client,
    cred: &Cred,
    shown: &str,
    path: &str,
    o: Options,
) -> Result<String, LfsError> {
    match striping(c, cred, path).await? {
        Striping::File { layout, .. } => Ok(file_text(shown, &layout, o)),
        Striping::None { .. } => Err(LfsError::Errno(fabric::Errno::ENODATA)),
        Striping::Dir { attr, default } => {
            if o.dir_only || o.yaml {
                return Ok(dir_text(&default, o));
            }
            let mut out = String::new();
            let full = o.fields.all();
            if full {
                out.push_str(shown);
                out.push('\n');
            }
            out.push_str(&dir_text(&default, o));
            if full {
                out.push('\n');
            }
            let base = shown.trim_end_matches('/');
            for e in c.readdir_all(cred, attr.fid).await? {
                if e.name == "." || e.name == ".." {
                    continue;
                }
                let (attr, layout) = c.getattr_md(cred, e.fid).await?;
                let child = format!("{base}/{}", e.name);
                match striping_of(c, cred, attr, layout).await? {
                    Striping::File { layout, .. } => out.push_str(&file_text(&child, &layout, o)),
                    Striping::Dir { default, .. } => {
                        if full {
                            out.push_str(&format!("{child}\n"));
                        }
                        out.push_str(&dir_text(&default, o));
                        if full {
                            out.push('\n');
                        }
                    }
                    Striping::None { .. } => {}
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let objs =
            (0..2).map(|i| StripeObject { ost_idx: i, fid: Fid::new(Fid::ost_seq(i), 2 + i) }).collect();
        Layout::new_raid0(1 << 20, None, objs)
    }

    #[test]
    fn file_matches_lfs() {
        let out = file_text("/mnt/glint/f", &layout(), Options::default());
        assert_eq!(
            out,
            "/mnt/glint/f\n\
             lmm_stripe_count:  2\n\
             lmm_stripe_size:   1048576\n\
             lmm_pattern:       raid0\n\
             lmm_layout_gen:    1\n\
             lmm_stripe_offset: 0\n\
             \tobdidx\t\t objid\t\t objid\t\t group\n\
             \t     0\t             2\t          0x2\t   0x100000000\n\
             \t     1\t             3\t          0x3\t   0x100000001\n\n"
        );
    }

    #[test]
    fn single_fields_print_bare_values() {
        let l = layout();
        let f =
            |count, size, offset| Options { fields: Fields { count, size, offset }, ..Options::default() };
        assert_eq!(file_text("f", &l, f(true, false, false)), "2\n");
        assert_eq!(file_text("f", &l, f(false, true, false)), "1048576\n");
        assert_eq!(file_text("f", &l, f(false, false, true)), "0\n");
        assert_eq!(
            file_text("f", &l, f(true, true, false)),
            "lmm_stripe_count:  2\nlmm_stripe_size:   1048576\n"
        );
    }

    #[test]
    fn file_yaml_parses_and_has_lustre_keys() {
        let out = file_yaml(&layout());
        assert!(out.starts_with("  lcm_layout_gen:    1\n  lcm_mirror_count:  1\n  lcm_entry_count:   1\n"));
        assert!(out.contains("    lcme_extent.e_end:   EOF\n    sub_layout:\n"), "{out}");
        assert!(out.ends_with(
            "      lmm_objects:\n      - l_ost_idx: 0\n        l_fid:     0x100000000:0x2:0x0\n      \
             - l_ost_idx: 1\n        l_fid:     0x100000001:0x3:0x0\n"
        ));
        let v: serde_norway::Value = serde_norway::from_str(&out).unwrap();
        let sub = &v["component0"]["sub_layout"];
        assert_eq!(sub["lmm_stripe_count"], serde_norway::Value::from(2));
        assert_eq!(sub["lmm_objects"][1]["l_ost_idx"], serde_norway::Value::from(1));
        assert_eq!(v["component0"]["lcme_extent.e_end"].as_str(), Some("EOF"));
    }

    #[test]
    fn directory_defaults() {
        let d = StripeSpec { stripe_count: Some(-1), stripe_size: Some(4 << 20), stripe_offset: None };
        assert_eq!(
            dir_text(&d, Options::default()),
            "stripe_count:  -1 stripe_size:   4194304 pattern:       raid0 stripe_offset: -1\n"
        );
        let y = dir_text(&d, Options { yaml: true, ..Options::default() });
        assert_eq!(y, "stripe_count:  -1\nstripe_size:   4194304\npattern:       raid0\nstripe_offset: -1\n");
        serde_norway::from_str::<serde_norway::Value>(&y).unwrap();
        let only =
            |count, size, offset| Options { fields: Fields { count, size, offset }, ..Options::default() };
        assert_eq!(dir_text(&d, only(true, false, false)), "-1\n");
        assert_eq!(dir_text(&d, only(false, true, false)), "4194304\n");
        assert_eq!(dir_text(&d, only(true, false, true)), "stripe_count:  -1 stripe_offset: -1\n");
        let pinned = StripeSpec { stripe_offset: Some(3), ..d };
        assert_eq!(dir_text(&pinned, only(false, false, true)), "3\n");
    }
}
