//! What a connection's completion queue reports, and how a work request
//! id names the slot it used.
//!
//! The HCA hands back only a 64-bit id per work request, and on an error
//! completion the opcode is undefined, so the id itself says which kind of
//! request it was (top two bits) and which slot it used (the rest).

use sideway::ibverbs::completion::WorkCompletionStatus;

/// The kind of work request a completion belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// An immediate message this side sent.
    Send,
    /// An immediate message that arrived in a pre-posted buffer.
    Recv,
    /// An RDMA WRITE this side initiated.
    Write,
    /// An RDMA READ this side initiated.
    Read,
}

/// One completed work request.
#[derive(Debug)]
pub struct Completion<'a> {
    pub op: Op,
    /// The id the caller gave the request; for `Recv`, the receive slot.
    pub wr_id: u64,
    pub status: WorkCompletionStatus,
    /// For a successful `Recv`, the message; empty otherwise. It borrows
    /// the receive buffer, which is posted again when the callback returns.
    pub data: &'a [u8],
}

impl Completion<'_> {
    pub fn is_ok(&self) -> bool {
        self.status == WorkCompletionStatus::Success
    }
}

/// The queue a work request went to, as encoded in its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queue {
    Send,
    Recv,
    Rdma,
}

const KIND_SHIFT: u32 = 62;
const SLOT_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// The work request id for `slot` of `queue`.
pub(crate) fn encode_wr_id(queue: Queue, slot: usize) -> u64 {
    let kind = match queue {
        Queue::Send => 1u64,
        Queue::Recv => 2,
        Queue::Rdma => 3,
    };
    (kind << KIND_SHIFT) | (slot as u64 & SLOT_MASK)
}

/// The queue and slot a work request id names; `None` for an id this
/// module never issued.
pub(crate) fn decode_wr_id(wr_id: u64) -> Option<(Queue, usize)> {
    let queue = match wr_id >> KIND_SHIFT {
        1 => Queue::Send,
        2 => Queue::Recv,
        3 => Queue::Rdma,
        _ => return None,
    };
    Some((queue, usize::try_from(wr_id & SLOT_MASK).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zero_is_not_an_id() {
        assert_eq!(decode_wr_id(0), None);
        assert_eq!(decode_wr_id(12345), None);
    }

    proptest! {
        #[test]
        fn ids_round_trip(slot in 0usize..1 << 32, q in 0u8..3) {
            let queue = [Queue::Send, Queue::Recv, Queue::Rdma][q as usize];
            prop_assert_eq!(decode_wr_id(encode_wr_id(queue, slot)), Some((queue, slot)));
        }
    }
}
