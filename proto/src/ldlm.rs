//! The lock manager's wire types, after Lustre's LDLM: extent locks on
//! OST objects, which let a client cache what it read until another
//! client's write needs the range. A client enqueues a lock on an object
//! (`OstRequest::Enqueue`) and is granted a handle and an extent, often
//! wider than it asked; when another client needs a conflicting lock (or
//! writes without one), the OST calls the holder back on its
//! [`LDLM_CB_PORTAL`] and waits until it has dropped what the lock
//! covered and answered.

use crate::fid::Fid;
use serde::{Deserialize, Serialize};

/// The portal a client serves lock callbacks on (Lustre's
/// LDLM_CB_REQUEST_PORTAL).
pub const LDLM_CB_PORTAL: u16 = 17;

/// Opcodes, as Lustre numbers them.
pub mod opcode {
    pub const ENQUEUE: u16 = 101;
    pub const CANCEL: u16 = 103;
    pub const BL_CALLBACK: u16 = 104;
    pub const GL_CALLBACK: u16 = 106;
}

/// What a lock lets its holder do with the range it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockMode {
    /// Protected read: any number of clients may hold it on one range and
    /// cache what they read.
    PR,
    /// Protected write: one client, which may cache writes.
    PW,
}

impl LockMode {
    /// Whether locks of these modes held by different clients may overlap.
    pub fn compatible(self, other: LockMode) -> bool {
        self == LockMode::PR && other == LockMode::PR
    }

    pub fn name(self) -> &'static str {
        match self {
            LockMode::PR => "PR",
            LockMode::PW => "PW",
        }
    }
}

/// A byte range of an object, `[start, end]` with `end` inclusive as in
/// Lustre's `ldlm_extent`; `end == u64::MAX` reaches end of file and
/// beyond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LockExtent {
    pub start: u64,
    pub end: u64,
}

impl LockExtent {
    /// The whole object, `[0, EOF]`.
    pub const WHOLE: LockExtent = LockExtent { start: 0, end: u64::MAX };

    /// `[start, end]`, or None when `start > end`.
    pub fn new(start: u64, end: u64) -> Option<LockExtent> {
        (start <= end).then_some(LockExtent { start, end })
    }

    /// The bytes `[off, off + len)`; None for an empty range. A range
    /// running past `u64::MAX` reaches EOF.
    pub fn of_range(off: u64, len: u64) -> Option<LockExtent> {
        if len == 0 {
            return None;
        }
        Some(LockExtent { start: off, end: off.saturating_add(len - 1) })
    }

    /// From `off` to end of file, as a truncate or punch to EOF frees.
    pub fn from(off: u64) -> LockExtent {
        LockExtent { start: off, end: u64::MAX }
    }

    /// Whether the extent is well formed (`start <= end`); a decoded one
    /// may not be.
    pub fn is_valid(&self) -> bool {
        self.start <= self.end
    }

    pub fn overlaps(&self, o: &LockExtent) -> bool {
        self.start <= o.end && o.start <= self.end
    }

    pub fn contains(&self, o: &LockExtent) -> bool {
        self.start <= o.start && o.end <= self.end
    }
}

impl std::fmt::Display for LockExtent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.end == u64::MAX {
            write!(f, "[{}->EOF]", self.start)
        } else {
            write!(f, "[{}->{}]", self.start, self.end)
        }
    }
}

/// A granted lock, named by the cookie the OST chose (Lustre's
/// `lustre_handle`). Never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockHandle(pub u64);

impl LockHandle {
    /// Handles carry the run of the target that granted them in their
    /// bits from this one up, so handles of each run lie above every
    /// earlier run's: 2^43 handles per run (locks and I/O holds), years
    /// at 100k writes a second.
    pub const RUN_SHIFT: u32 = 44;

    /// The target run that granted this handle.
    pub fn run(self) -> u32 {
        (self.0 >> Self::RUN_SHIFT) as u32
    }
}

/// A call an OST makes to a client on [`LDLM_CB_PORTAL`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LdlmCallback {
    /// Another client needs (part of) the range `handle` covers: drop
    /// what the lock covers (flushing anything dirty first), forget the
    /// lock, then answer [`LdlmCallbackReply::Cancelled`]. The answer is
    /// the lock's cancellation.
    Blocking { target: u32, handle: LockHandle, fid: Fid, extent: LockExtent },
    /// Another client stats the object: say how large this client knows it
    /// to be ([`LdlmCallbackReply::Glimpsed`]) and keep the lock.
    Glimpse { target: u32, handle: LockHandle, fid: Fid },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LdlmCallbackReply {
    Cancelled,
    /// The object's size as the holder knows it: at least the size at its
    /// grant, grown by its own writes, including those it has not sent
    /// yet (0 when it holds no lock on it any more).
    Glimpsed {
        size: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OstCall, OstReply, OstRequest, decode, encode};
    use proptest::prelude::*;

    fn mode() -> impl Strategy<Value = LockMode> {
        prop_oneof![Just(LockMode::PR), Just(LockMode::PW)]
    }

    fn extent() -> impl Strategy<Value = LockExtent> {
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| LockExtent { start: a.min(b), end: a.max(b) })
    }

    fn fid() -> impl Strategy<Value = Fid> {
        (any::<u64>(), any::<u32>()).prop_map(|(s, o)| Fid::new(s, o))
    }

    #[test]
    fn only_pr_shares_a_range() {
        assert!(LockMode::PR.compatible(LockMode::PR));
        assert!(!LockMode::PR.compatible(LockMode::PW));
        assert!(!LockMode::PW.compatible(LockMode::PR));
        assert!(!LockMode::PW.compatible(LockMode::PW));
    }

    #[test]
    fn ranges_become_inclusive_extents() {
        assert_eq!(LockExtent::of_range(0, 4096), LockExtent::new(0, 4095));
        assert_eq!(LockExtent::of_range(7, 0), None);
        assert_eq!(LockExtent::of_range(u64::MAX - 1, 10), Some(LockExtent::from(u64::MAX - 1)));
        assert_eq!(LockExtent::new(5, 4), None);
        assert_eq!(LockExtent::WHOLE.to_string(), "[0->EOF]");
    }

    proptest! {
        #[test]
        fn enqueue_and_grant_survive_the_codec(target in any::<u32>(), fid in fid(), mode in mode(),
                                               extent in extent(), cookie in any::<u64>()) {
            let call = OstCall { target, op: OstRequest::Enqueue { fid, mode, extent } };
            prop_assert_eq!(decode::<OstCall>("enqueue", &encode(&call)).unwrap(), call);
            let cancel = OstCall { target, op: OstRequest::Cancel { fid, handle: LockHandle(cookie) } };
            prop_assert_eq!(decode::<OstCall>("cancel", &encode(&cancel)).unwrap(), cancel);
            let attr = crate::ObjAttr { size: cookie, blocks: cookie / 7, ..Default::default() };
            let granted = OstReply::Granted { handle: LockHandle(cookie), extent, attr };
            prop_assert_eq!(decode::<OstReply>("granted", &encode(&granted)).unwrap(), granted);
        }

        #[test]
        fn recovery_requests_survive_the_codec(target in any::<u32>(), fid in fid(), mode in mode(),
                                               extent in extent(), cookie in any::<u64>(),
                                               recovering in any::<bool>()) {
            let handle = LockHandle(cookie);
            prop_assert_eq!(handle.run(), (cookie >> LockHandle::RUN_SHIFT) as u32);
            for op in [OstRequest::Replay { fid, mode, extent, handle }, OstRequest::ReplayDone, OstRequest::Disconnect] {
                let call = OstCall { target, op };
                prop_assert_eq!(decode::<OstCall>("recovery", &encode(&call)).unwrap(), call);
            }
            let connected = OstReply::Connected { uuid: format!("{cookie:x}"), run: target, recovering };
            prop_assert_eq!(decode::<OstReply>("connected", &encode(&connected)).unwrap(), connected);
        }

        #[test]
        fn callbacks_survive_the_codec(target in any::<u32>(), fid in fid(), extent in extent(),
                                       cookie in any::<u64>()) {
            let cb = LdlmCallback::Blocking { target, handle: LockHandle(cookie), fid, extent };
            prop_assert_eq!(decode::<LdlmCallback>("callback", &encode(&cb)).unwrap(), cb);
            let gl = LdlmCallback::Glimpse { target, handle: LockHandle(cookie), fid };
            prop_assert_eq!(decode::<LdlmCallback>("glimpse", &encode(&gl)).unwrap(), gl);
            for r in [LdlmCallbackReply::Cancelled, LdlmCallbackReply::Glimpsed { size: cookie }] {
                prop_assert_eq!(decode::<LdlmCallbackReply>("callback reply", &encode(&r)).unwrap(), r);
            }
            let call = OstCall { target, op: OstRequest::Glimpse { fid } };
            prop_assert_eq!(decode::<OstCall>("glimpse request", &encode(&call)).unwrap(), call);
        }

        #[test]
        fn overlap_is_symmetric_and_containment_implies_it(a in extent(), b in extent()) {
            prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
            if a.contains(&b) {
                prop_assert!(a.overlaps(&b));
            }
            prop_assert!(LockExtent::WHOLE.contains(&a));
        }

        #[test]
        fn garbage_never_panics_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<LdlmCallback>("callback", &bytes);
            let _ = decode::<LdlmCallbackReply>("callback reply", &bytes);
        }
    }
}
