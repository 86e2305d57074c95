//! Credit flow control on one o2ib connection, as o2iblnd keeps it: each
//! side keeps receive buffers posted, and may have at most that many
//! messages unanswered by credits at the peer, so a SEND always finds a
//! posted buffer and the HCA never sees receiver-not-ready.
//!
//! There are two pools, each with buffers of its own:
//! - *message* credits, for messages handed to the layer above, which may
//!   hold them (a server holds a request while it serves it);
//! - *control* credits, for the LND's own messages (hello, rkey requests
//!   and grants, NOOPs), which the receiving LND consumes at once.
//!
//! Serving a request may need control messages (the rkey exchange of its
//! bulk), so if both shared one pool, requests held by the server could
//! take the credits their own grants need and both sides would wait
//! forever. Kept apart, the control pool always drains.
//!
//! Every message takes a credit of its pool and carries back the credits
//! its sender owes in both (buffers reposted since its last message). The
//! last control credit is kept for a message that returns control credits,
//! so two sides that both ran out never wait on each other; a NOOP (a
//! control message) carries credits back when enough are owed in either
//! pool and nothing else goes the peer's way.

/// One pool of one side's credits on one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credits {
    /// Messages this side may still send before the peer returns credits.
    have: u32,
    /// Receive buffers this side reposted and has not told the peer about.
    owed: u32,
    high_water: u32,
}

/// The smallest depth of a pool that works: the last control credit is
/// reserved, and a NOOP goes only with at least two owed (one owed NOOP
/// credit must not trigger another NOOP, or two idle sides would ping-pong
/// forever).
pub const MIN_DEPTH: u16 = 4;

impl Credits {
    /// Both sides start holding `depth` credits: the peer's posted buffers.
    pub fn new(depth: u16) -> Credits {
        let depth = u32::from(depth.max(MIN_DEPTH));
        Credits { have: depth, owed: 0, high_water: (depth / 4).max(2) }
    }

    pub fn have(&self) -> u32 {
        self.have
    }

    pub fn owed(&self) -> u32 {
        self.owed
    }

    /// The peer returned `n` credits.
    pub fn returned(&mut self, n: u16) {
        self.have += u32::from(n);
    }

    /// A receive buffer was consumed and posted again.
    pub fn reposted(&mut self) {
        self.owed += 1;
    }

    /// Whether a control message other than a NOOP may go now: the last
    /// credit only with credits to return.
    pub fn may_send(&self) -> bool {
        self.have >= 2 || (self.have == 1 && self.owed > 0)
    }

    /// Whether a message of the pool whose credits come back by NOOPs of
    /// the other pool may go now.
    pub fn may_send_any(&self) -> bool {
        self.have >= 1
    }

    /// Whether enough credits are owed to be worth a NOOP.
    pub fn owes_noop(&self) -> bool {
        self.owed >= self.high_water
    }

    /// Takes the credit for one message about to be posted, and the owed
    /// credits it carries back.
    pub fn take(&mut self) -> u16 {
        debug_assert!(self.have > 0, "sending without a credit");
        self.have = self.have.saturating_sub(1);
        self.take_owed()
    }

    /// Takes the owed credits a message of the other pool carries back.
    pub fn take_owed(&mut self) -> u16 {
        let back = self.owed.min(u32::from(u16::MAX));
        self.owed -= back;
        back as u16
    }

    /// Puts back what `take` took, for a message that could not be posted.
    pub fn untake(&mut self, back: u16) {
        self.have += 1;
        self.owed += u32::from(back);
    }

    /// Puts back what `take_owed` took.
    pub fn untake_owed(&mut self, back: u16) {
        self.owed += u32::from(back);
    }
}

/// What a message takes from the pools, and what it returns in each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub msg_credits: u16,
    pub ctrl_credits: u16,
}

/// Both pools of one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pools {
    pub msg: Credits,
    pub ctrl: Credits,
}

/// The three kinds of message as credits see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// For the layer above: a message credit.
    Msg,
    /// The LND's own: a control credit, the last one kept back.
    Ctrl,
    /// Only credits: a control credit, the last one included.
    Noop,
}

impl Pools {
    pub fn new(msg_depth: u16, ctrl_depth: u16) -> Pools {
        Pools { msg: Credits::new(msg_depth), ctrl: Credits::new(ctrl_depth) }
    }

    /// Whether a NOOP should go now: enough owed in either pool, and a
    /// control credit for it. The last one only with control credits to
    /// return: a NOOP for message credits alone that took it would leave
    /// this side none, and the peer, owing it fewer than a NOOP's worth,
    /// would never send them back.
    pub fn wants_noop(&self) -> bool {
        (self.msg.owes_noop() || self.ctrl.owes_noop()) && self.ctrl.may_send()
    }

    /// Whether a message of `kind` may go now.
    pub fn may_send(&self, kind: Kind) -> bool {
        match kind {
            Kind::Msg => self.msg.may_send_any(),
            Kind::Ctrl => self.ctrl.may_send(),
            Kind::Noop => self.wants_noop(),
        }
    }

    /// Takes the credit for one message of `kind`, and every owed credit.
    pub fn take(&mut self, kind: Kind) -> Taken {
        match kind {
            Kind::Msg => Taken { msg_credits: self.msg.take(), ctrl_credits: self.ctrl.take_owed() },
            Kind::Ctrl | Kind::Noop => {
                Taken { ctrl_credits: self.ctrl.take(), msg_credits: self.msg.take_owed() }
            }
        }
    }

    /// Puts back what `take` took.
    pub fn untake(&mut self, kind: Kind, t: Taken) {
        match kind {
            Kind::Msg => {
                self.msg.untake(t.msg_credits);
                self.ctrl.untake_owed(t.ctrl_credits);
            }
            Kind::Ctrl | Kind::Noop => {
                self.ctrl.untake(t.ctrl_credits);
                self.msg.untake_owed(t.msg_credits);
            }
        }
    }

    /// A message arrived carrying credits back.
    pub fn returned(&mut self, t: Taken) {
        self.msg.returned(t.msg_credits);
        self.ctrl.returned(t.ctrl_credits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A message in flight: its kind and the credits it returns.
    type Wire = VecDeque<(Kind, Taken)>;

    /// One side of a simulated connection.
    struct Side {
        pools: Pools,
        /// Buffers posted for the peer's messages, per pool.
        posted_msg: i64,
        posted_ctrl: i64,
        /// Messages the application holds.
        held: usize,
        /// Control messages to send (grants owed to the peer).
        ctrl_queue: usize,
    }

    impl Side {
        fn new(depth: u16, ctrl: u16) -> Side {
            Side {
                pools: Pools::new(depth, ctrl),
                posted_msg: i64::from(depth),
                posted_ctrl: i64::from(ctrl),
                held: 0,
                ctrl_queue: 0,
            }
        }

        fn send(&mut self, wire: &mut Wire, kind: Kind) {
            let t = self.pools.take(kind);
            wire.push_back((kind, t));
        }

        /// Queued control messages, then a NOOP if one is due.
        fn pump(&mut self, wire: &mut Wire) {
            while self.ctrl_queue > 0 && self.pools.may_send(Kind::Ctrl) {
                self.ctrl_queue -= 1;
                self.send(wire, Kind::Ctrl);
            }
            if self.ctrl_queue == 0 && self.pools.wants_noop() {
                self.send(wire, Kind::Noop);
            }
        }

        /// A message arrives; a control message that asks for an answer
        /// (`answer`) queues one.
        fn arrive(&mut self, wire: &mut Wire, answer: bool) -> Result<Option<Kind>, TestCaseError> {
            let Some((kind, t)) = wire.pop_front() else { return Ok(None) };
            self.pools.returned(t);
            match kind {
                Kind::Msg => {
                    self.posted_msg -= 1;
                    prop_assert!(self.posted_msg >= 0, "a message arrived with no posted buffer");
                    self.held += 1;
                }
                Kind::Ctrl | Kind::Noop => {
                    self.posted_ctrl -= 1;
                    prop_assert!(self.posted_ctrl >= 0, "a control message arrived with no posted buffer");
                    self.posted_ctrl += 1;
                    self.pools.ctrl.reposted();
                    if kind == Kind::Ctrl && answer {
                        self.ctrl_queue += 1;
                    }
                }
            }
            Ok(Some(kind))
        }

        fn consume(&mut self) {
            if self.held > 0 {
                self.held -= 1;
                self.posted_msg += 1;
                self.pools.msg.reposted();
            }
        }
    }

    proptest! {
        /// Whatever the interleaving of sends, arrivals and consumption, no
        /// message ever finds its receiver without a posted buffer, and once
        /// both applications have consumed everything the NOOPs settle and
        /// both sides can send again.
        #[test]
        fn never_overruns_and_settles(depth in MIN_DEPTH..20, ctrl in MIN_DEPTH..12,
                                      ops in proptest::collection::vec(0u8..10, 0..400)) {
            let (mut a, mut b) = (Side::new(depth, ctrl), Side::new(depth, ctrl));
            let (mut ab, mut ba) = (Wire::new(), Wire::new());
            for op in ops {
                match op {
                    0 if a.pools.may_send(Kind::Msg) => a.send(&mut ab, Kind::Msg),
                    1 if b.pools.may_send(Kind::Msg) => b.send(&mut ba, Kind::Msg),
                    2 => a.ctrl_queue += 1,
                    3 => b.ctrl_queue += 1,
                    4 => { b.arrive(&mut ab, false)?; }
                    5 => { a.arrive(&mut ba, false)?; }
                    6 => a.consume(),
                    7 => b.consume(),
                    _ => {}
                }
                a.pump(&mut ab);
                b.pump(&mut ba);
            }
            for _ in 0..10_000 {
                let quiet = ab.is_empty() && ba.is_empty() && a.held == 0 && b.held == 0
                    && a.ctrl_queue == 0 && b.ctrl_queue == 0
                    && !a.pools.wants_noop() && !b.pools.wants_noop();
                if quiet {
                    break;
                }
                b.arrive(&mut ab, false)?;
                a.arrive(&mut ba, false)?;
                a.consume();
                b.consume();
                a.pump(&mut ab);
                b.pump(&mut ba);
            }
            prop_assert!(ab.is_empty() && ba.is_empty() && a.ctrl_queue == 0 && b.ctrl_queue == 0, "never settled");
            for s in [&a, &b] {
                prop_assert!(s.pools.may_send(Kind::Msg) && s.pools.may_send(Kind::Ctrl), "stuck: {:?}", s.pools);
            }
        }

        /// The server's pattern: it holds every request until the client
        /// answers the control message (an rkey request) the request led
        /// to. However many requests the client sends and however the
        /// arrivals interleave, every request is served.
        #[test]
        fn held_requests_never_starve_their_grants(depth in MIN_DEPTH..20, ctrl in MIN_DEPTH..12,
                                                    requests in 1usize..80, order in proptest::collection::vec(0u8..4, 0..2000)) {
            let mut sim = Serving::new(depth, ctrl, requests);
            for i in order {
                sim.step(i)?;
            }
            for n in 0..100_000u32 {
                if sim.served == requests {
                    break;
                }
                sim.step((n % 3) as u8)?;
            }
            prop_assert_eq!(sim.served, requests, "deadlock: client {:?}, server {:?}", sim.client.pools, sim.server.pools);
        }
    }

    /// A client sending requests to a server that needs one grant from the
    /// client per request before it can drop it.
    struct Serving {
        client: Side,
        server: Side,
        to_server: Wire,
        to_client: Wire,
        requests: usize,
        sent: usize,
        served: usize,
        awaiting: usize,
    }

    impl Serving {
        fn new(depth: u16, ctrl: u16, requests: usize) -> Serving {
            Serving {
                client: Side::new(depth, ctrl),
                server: Side::new(depth, ctrl),
                to_server: Wire::new(),
                to_client: Wire::new(),
                requests,
                sent: 0,
                served: 0,
                awaiting: 0,
            }
        }

        fn step(&mut self, i: u8) -> Result<(), TestCaseError> {
            match i {
                0 if self.sent < self.requests && self.client.pools.may_send(Kind::Msg) => {
                    self.client.send(&mut self.to_server, Kind::Msg);
                    self.sent += 1;
                }
                1 => match self.server.arrive(&mut self.to_server, false)? {
                    Some(Kind::Msg) => {
                        // Serving it needs the client's grant.
                        self.server.ctrl_queue += 1;
                        self.awaiting += 1;
                    }
                    Some(Kind::Ctrl) if self.awaiting > 0 => {
                        // A grant: one held request is served and dropped.
                        self.awaiting -= 1;
                        self.served += 1;
                        self.server.consume();
                    }
                    _ => {}
                },
                2 => {
                    self.client.arrive(&mut self.to_client, true)?;
                }
                _ => {}
            }
            self.client.pump(&mut self.to_server);
            self.server.pump(&mut self.to_client);
            Ok(())
        }
    }

    #[test]
    fn the_last_control_credit_waits_for_a_message_that_returns_credits() {
        let mut c = Credits::new(4);
        for _ in 0..3 {
            assert!(c.may_send());
            assert_eq!(c.take(), 0);
        }
        assert_eq!(c.have(), 1);
        assert!(!c.may_send());
        assert!(c.may_send_any());
        c.reposted();
        assert!(c.may_send());
        assert!(!c.owes_noop(), "one owed credit is not worth a NOOP");
        c.reposted();
        assert!(c.owes_noop());
        assert_eq!(c.take(), 2);
        assert_eq!(c.have(), 0);
        assert!(!c.may_send() && !c.may_send_any());
        c.returned(3);
        assert!(c.may_send());
    }

    #[test]
    fn messages_return_both_pools_and_noops_need_a_control_credit() {
        let mut p = Pools::new(4, 4);
        for _ in 0..2 {
            p.msg.reposted();
            p.ctrl.reposted();
        }
        assert!(p.wants_noop());
        let t = p.take(Kind::Msg);
        assert_eq!(t, Taken { msg_credits: 2, ctrl_credits: 2 });
        assert_eq!((p.msg.have(), p.ctrl.have()), (3, 4));
        p.untake(Kind::Msg, t);
        assert_eq!((p.msg.have(), p.msg.owed(), p.ctrl.owed()), (4, 2, 2));
        for _ in 0..4 {
            p.take(Kind::Noop);
        }
        for _ in 0..2 {
            p.msg.reposted();
        }
        assert!(!p.wants_noop(), "no control credit left for a NOOP");
    }
}
