//! The codec round-trips every message shape and refuses garbage without
//! panicking.

use fabric::BulkHandle;
use proptest::prelude::*;
use proto::*;

fn fid() -> impl Strategy<Value = Fid> {
    (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(seq, oid, ver)| Fid { seq, oid, ver })
}

fn handle() -> impl Strategy<Value = BulkHandle> {
    (any::<u64>(), any::<u64>(), any::<u64>(), any::<Option<u32>>())
        .prop_map(|(addr, len, key, rkey)| BulkHandle { addr, len, key, rkey })
}

fn ost_request() -> impl Strategy<Value = OstRequest> {
    prop_oneof![
        (
            fid(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(handle(), 0..20),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(|(fid, offset, len, segs, crc, sync)| OstRequest::Write {
                lock: (offset % 3 == 0).then_some(LockHandle(len)),
                fid,
                offset,
                len,
                segs,
                crc,
                sync
            }),
        (fid(), any::<u64>(), any::<u64>(), proptest::collection::vec(handle(), 0..20))
            .prop_map(|(fid, offset, len, segs)| OstRequest::Read { fid, offset, len, segs }),
        (any::<u64>(), any::<u32>(), any::<u32>())
            .prop_map(|(seq, first_oid, count)| OstRequest::Precreate { seq, first_oid, count }),
        fid().prop_map(|fid| OstRequest::Getattr { fid }),
        Just(OstRequest::Statfs),
        (fid(), any::<u64>(), any::<u32>(), any::<bool>(), any::<Option<u64>>()).prop_map(
            |(fid, offset, crc, sync, lock)| OstRequest::WriteShort {
                fid,
                offset,
                crc,
                sync,
                lock: lock.map(LockHandle)
            }
        ),
        (fid(), any::<u64>(), any::<u64>()).prop_map(|(fid, offset, len)| OstRequest::ReadShort {
            fid,
            offset,
            len
        }),
    ]
}

fn short_data() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=MAX_SHORT_IO_BYTES)
}

fn mds_call() -> impl Strategy<Value = MdsCall> {
    let cred = (any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u32>(), 0..8))
        .prop_map(|(uid, gid, groups)| Cred { uid, gid, groups });
    let op = prop_oneof![
        (fid(), ".{0,300}").prop_map(|(parent, name)| MdsRequest::Lookup { parent, name }),
        (
            fid(),
            ".{0,40}",
            any::<u32>(),
            any::<Option<i32>>(),
            any::<Option<u64>>(),
            any::<bool>(),
            any::<Option<u32>>()
        )
            .prop_map(|(parent, name, mode, c, s, exclusive, open)| MdsRequest::Create {
                parent,
                name,
                mode,
                stripe: StripeSpec { stripe_count: c, stripe_size: s, stripe_offset: None },
                exclusive,
                open
            }),
        proptest::collection::vec(fid(), 0..200).prop_map(|fids| MdsRequest::GetattrMany { fids }),
        (fid(), ".{0,40}", fid(), ".{0,40}").prop_map(|(parent, name, new_parent, new_name)| {
            MdsRequest::Rename { parent, name, new_parent, new_name }
        }),
        (fid(), ".{0,40}", proptest::collection::vec(any::<u8>(), 0..100), any::<u32>())
            .prop_map(|(fid, name, value, flags)| MdsRequest::Setxattr { fid, name, value, flags }),
    ];
    (cred, op).prop_map(|(cred, op)| MdsCall { cred, op })
}

fn attr() -> impl Strategy<Value = Attr> {
    (fid(), any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<i64>(), any::<u32>()).prop_map(
        |(fid, mode, uid, size, blocks, sec, nsec)| Attr {
            fid,
            mode,
            uid,
            size,
            blocks,
            mtime: Timestamp { sec, nsec },
            ..Attr::default()
        },
    )
}

fn layout() -> impl Strategy<Value = Layout> {
    proptest::collection::vec(fid(), 1..8).prop_map(|fids| {
        let objects = fids.into_iter().enumerate().map(|(i, fid)| StripeObject { ost_idx: i as u32, fid });
        Layout::new_raid0(1 << 20, None, objects.collect())
    })
}

fn mds_reply() -> impl Strategy<Value = MdsReply> {
    let stat = (attr(), proptest::option::of(layout()), any::<bool>())
        .prop_map(|(attr, layout, xattrs)| InodeAttrs { attr, layout, xattrs });
    prop_oneof![
        (attr(), proptest::option::of(layout()), any::<bool>(), attr())
            .prop_map(|(attr, layout, new, parent)| MdsReply::Created { attr, layout, new, parent }),
        attr().prop_map(|parent| MdsReply::Unlinked { parent }),
        proptest::collection::vec(proptest::option::of(stat), 0..50)
            .prop_map(|attrs| MdsReply::Attrs { attrs }),
    ]
}

proptest! {
    #[test]
    fn mds_replies_round_trip(r in mds_reply()) {
        prop_assert_eq!(decode::<MdsReply>("mds reply", &encode(&r)).unwrap(), r);
    }

    #[test]
    fn ost_requests_round_trip(r in ost_request()) {
        prop_assert_eq!(decode::<OstRequest>("ost request", &encode(&r)).unwrap(), r);
    }

    #[test]
    fn mds_calls_round_trip(c in mds_call()) {
        prop_assert_eq!(decode::<MdsCall>("mds call", &encode(&c)).unwrap(), c);
    }

    /// A short write's bytes travel after its call and come back whole;
    /// any other request with bytes after it is refused.
    #[test]
    fn short_write_data_rides_after_the_call(op in ost_request(), data in short_data()) {
        let call = OstCall { target: 3, op };
        let bytes = encode_ost_call(&call, &data);
        let decoded = decode_ost_call(&bytes);
        if matches!(call.op, OstRequest::WriteShort { .. }) {
            let (back, tail) = decoded.unwrap();
            prop_assert_eq!(back, call);
            prop_assert_eq!(tail, &data[..]);
        } else if data.is_empty() {
            prop_assert_eq!(decoded.unwrap().0, call);
        } else {
            prop_assert!(decoded.is_err());
        }
    }

    #[test]
    fn short_read_data_rides_after_the_reply(crc in any::<u32>(), data in short_data(), len in any::<u64>()) {
        let reply = OstReply::ReadShort { crc };
        let bytes = encode_ost_reply(&reply, &data);
        let (back, tail) = decode_ost_reply(&bytes).unwrap();
        prop_assert_eq!(back, reply);
        prop_assert_eq!(tail, &data[..]);
        let other = encode_ost_reply(&OstReply::Written { len }, &data);
        prop_assert_eq!(decode_ost_reply(&other).is_ok(), data.is_empty());
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode::<OstRequest>("ost", &bytes);
        let _ = decode::<MdsCall>("mds", &bytes);
        let _ = decode::<MgsRequest>("mgs", &bytes);
        let _ = decode::<MdsReply>("mds reply", &bytes);
        let _ = decode::<OstReply>("ost reply", &bytes);
        let _ = decode_ost_call(&bytes);
        let _ = decode_ost_reply(&bytes);
    }

    #[test]
    fn trailing_bytes_are_refused(r in ost_request(), extra in 1usize..8) {
        let mut b = encode(&r);
        b.extend(std::iter::repeat_n(0u8, extra));
        prop_assert!(decode::<OstRequest>("ost", &b).is_err());
    }
}

#[test]
fn layouts_round_trip_with_many_stripes() {
    let objects = (0..2000)
        .map(|i| StripeObject { ost_idx: i, fid: Fid::new(Fid::ost_seq(i), i * 7) })
        .collect::<Vec<_>>();
    let l = Layout::new_raid0(1 << 20, Some(3), objects);
    let bytes = encode(&l);
    assert!(bytes.len() < 60 * 1024, "a 2000-stripe layout fits an immediate message: {}", bytes.len());
    assert_eq!(decode::<Layout>("layout", &bytes).unwrap(), l);
}

#[test]
fn short_io_data_beyond_the_limit_is_refused() {
    let fid = Fid::new(Fid::ost_seq(0), 1);
    let call =
        OstCall { target: 0, op: OstRequest::WriteShort { fid, offset: 0, crc: 0, sync: false, lock: None } };
    let e = decode_ost_call(&encode_ost_call(&call, &vec![0; MAX_SHORT_IO_BYTES + 1])).unwrap_err();
    assert!(e.reason.contains("short I/O"), "{e}");
    let big = encode_ost_reply(&OstReply::ReadShort { crc: 0 }, &vec![0; MAX_SHORT_IO_BYTES + 1]);
    assert!(decode_ost_reply(&big).is_err());
}
