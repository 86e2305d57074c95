//! Many threads on one object: disjoint ranges land exactly, overlapping
//! ones behave as if run one after another, and a read never sees half of
//! a write or punch.

mod common;

use common::{fid, pattern, target};
use ost::AlignedBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const THREADS: usize = 8;

#[test]
fn disjoint_writers_land_exactly() {
    let t = Arc::new(target());
    let f = fid(1);
    t.store.create(f).unwrap();
    // Interleaved chunks, some aligned (direct path), some not (buffered),
    // so neighbouring writers share pages and blocks.
    const CHUNK: usize = 4096;
    const ROUNDS: usize = 64;
    let workers: Vec<_> = (0..THREADS)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                for k in 0..ROUNDS {
                    let slot = k * THREADS + i;
                    let data = pattern(CHUNK, slot as u8);
                    if k % 2 == 0 {
                        let buf = AlignedBuf::from_slice(&data);
                        t.store.write(f, (slot * CHUNK) as u64, &buf, false).unwrap();
                    } else {
                        // Split unaligned: two writes of 1000 and the rest.
                        let off = (slot * CHUNK) as u64;
                        t.store.write(f, off + 1000, &data[1000..], false).unwrap();
                        t.store.write(f, off, &data[..1000], false).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let total = THREADS * ROUNDS * CHUNK;
    let mut got = vec![0u8; total];
    assert_eq!(t.store.read(f, 0, &mut got).unwrap(), total);
    for slot in 0..THREADS * ROUNDS {
        assert_eq!(got[slot * CHUNK..(slot + 1) * CHUNK], pattern(CHUNK, slot as u8)[..], "slot {slot}");
    }
}

/// Writers and punchers each cover the whole range with one request;
/// readers check that every read is uniform (one request's result, not a
/// mix), and the end state is one request's result.
#[test]
fn overlapping_requests_are_serialised() {
    let t = Arc::new(target());
    let f = fid(2);
    t.store.create(f).unwrap();
    const LEN: usize = 1 << 20;
    const ROUNDS: usize = 20;
    t.store.write(f, 0, &vec![0u8; LEN], false).unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (t, stop) = (t.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; LEN];
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) || reads == 0 {
                    assert_eq!(t.store.read(f, 0, &mut buf).unwrap(), LEN);
                    let first = buf[0];
                    if let Some(i) = buf.iter().position(|&b| b != first) {
                        panic!("torn read: byte 0 is {first}, byte {i} is {}", buf[i]);
                    }
                    reads += 1;
                }
            })
        })
        .collect();

    let writers: Vec<_> = (0..THREADS)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                for k in 0..ROUNDS {
                    if i == 0 && k % 3 == 0 {
                        t.store.punch(f, 0, LEN as u64).unwrap();
                    } else {
                        // Values 1..=160: never 0, so a punch shows.
                        let v = (i * ROUNDS + k + 1) as u8;
                        if k % 2 == 0 {
                            t.store.write(f, 0, &AlignedBuf::from_slice(&vec![v; LEN]), false).unwrap();
                        } else {
                            t.store.write(f, 0, &vec![v; LEN], false).unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let mut end = vec![0u8; LEN];
    assert_eq!(t.store.read(f, 0, &mut end).unwrap(), LEN);
    assert!(end.iter().all(|&b| b == end[0]), "final state mixes requests");
}

#[test]
fn many_objects_in_parallel() {
    let t = Arc::new(target());
    let seq = proto::Fid::ost_seq(common::INDEX);
    t.store.precreate(seq, 1, (THREADS * 50) as u32).unwrap();
    let workers: Vec<_> = (0..THREADS)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                for k in 0..50 {
                    let oid = (i * 50 + k + 1) as u32;
                    let data = pattern(10_000 + oid as usize, oid as u8);
                    t.store.write(fid(oid), 0, &data, false).unwrap();
                    let mut back = vec![0u8; data.len()];
                    assert_eq!(t.store.read(fid(oid), 0, &mut back).unwrap(), data.len());
                    assert_eq!(back, data, "oid {oid}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
