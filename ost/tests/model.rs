//! Random sequences of write, punch and truncate against a `Vec<u8>` model:
//! the object always reads back as the model.

mod common;

use common::{fid, target};
use ost::AlignedBuf;
use proptest::prelude::*;

const SPAN: u64 = 256 << 10;

#[derive(Clone, Debug)]
enum Op {
    Write { off: u64, len: usize, seed: u8, aligned: bool },
    Punch { off: u64, len: u64 },
    Truncate { size: u64 },
    Read { off: u64, len: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SPAN, 1..65_536usize, any::<u8>(), any::<bool>())
            .prop_map(|(off, len, seed, aligned)| Op::Write { off, len, seed, aligned }),
        2 => (0..SPAN, 0..SPAN).prop_map(|(off, len)| Op::Punch { off, len }),
        1 => (0..SPAN).prop_map(|size| Op::Truncate { size }),
        2 => (0..SPAN + 8192, 0..70_000usize).prop_map(|(off, len)| Op::Read { off, len }),
    ]
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i % 251) as u8) | 1).collect()
}

fn check_read(store: &ost::ObjectStore, model: &[u8], off: u64, len: usize) -> Result<(), TestCaseError> {
    let mut buf = vec![0xeeu8; len];
    let n = store.read(fid(1), off, &mut buf).unwrap();
    let start = (off as usize).min(model.len());
    let end = (off as usize + len).min(model.len());
    prop_assert_eq!(n, end - start, "read length at {} of {}", off, len);
    prop_assert!(buf[..n] == model[start..end], "read contents at {} of {}", off, len);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn object_matches_model(ops in prop::collection::vec(op(), 1..24)) {
        let t = target();
        let store = &t.store;
        store.create(fid(1)).unwrap();
        let mut model: Vec<u8> = Vec::new();
        for op in ops {
            match op {
                Op::Write { off, len, seed, aligned } => {
                    let (off, len) = if aligned {
                        (off / 4096 * 4096, len.div_ceil(4096) * 4096)
                    } else {
                        (off, len)
                    };
                    let data = bytes(len, seed);
                    if aligned {
                        store.write(fid(1), off, &AlignedBuf::from_slice(&data), false).unwrap();
                    } else {
                        store.write(fid(1), off, &data, false).unwrap();
                    }
                    let end = off as usize + len;
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[off as usize..end].copy_from_slice(&data);
                }
                Op::Punch { off, len } => {
                    store.punch(fid(1), off, len).unwrap();
                    let end = ((off + len) as usize).min(model.len());
                    if (off as usize) < end {
                        model[off as usize..end].fill(0);
                    }
                }
                Op::Truncate { size } => {
                    store.truncate(fid(1), size).unwrap();
                    model.resize(size as usize, 0);
                }
                Op::Read { off, len } => check_read(store, &model, off, len)?,
            }
            prop_assert_eq!(store.getattr(fid(1)).unwrap().size, model.len() as u64);
        }
        check_read(store, &model, 0, model.len() + 4096)?;
        let mut aligned = AlignedBuf::zeroed(model.len().div_ceil(4096) * 4096 + 4096);
        let n = store.read(fid(1), 0, &mut aligned).unwrap();
        prop_assert_eq!(n, model.len());
        prop_assert!(aligned[..n] == model[..], "aligned read-back differs");
    }
}
