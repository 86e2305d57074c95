//! Interface health as LNet keeps it: every NI, local or a peer's, starts
//! at 1000; each failure takes away `health_sensitivity` (100 by default,
//! never below 0) and each success gives it back (never above 1000).
//! Selection prefers the healthiest NI; an NI below the maximum is pinged
//! for recovery every second, backing off to a cap.

use std::fmt;
use std::time::Duration;

/// A health value in `0..=1000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Health(u32);

impl Health {
    pub const MAX: Health = Health(1000);
    pub const MIN: Health = Health(0);
    /// Health lost per failure unless configured otherwise.
    pub const DEFAULT_SENSITIVITY: u32 = 100;

    /// A health value, clamped to the maximum.
    pub fn new(value: u32) -> Health {
        Health(value.min(Health::MAX.0))
    }

    pub fn value(self) -> u32 {
        self.0
    }

    /// After one failure; a sensitivity of 0 turns health tracking off.
    #[must_use]
    pub fn failed(self, sensitivity: u32) -> Health {
        Health(self.0.saturating_sub(sensitivity))
    }

    /// After one success (or answered recovery ping).
    #[must_use]
    pub fn succeeded(self, sensitivity: u32) -> Health {
        Health::new(self.0.saturating_add(sensitivity))
    }

    /// Whether the NI is fully healthy, i.e. not in recovery.
    pub fn is_full(self) -> bool {
        self == Health::MAX
    }
}

impl Default for Health {
    fn default() -> Health {
        Health::MAX
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// When to send the next recovery ping after `pings_sent` unanswered ones:
/// `recovery_interval`, doubling per ping, capped at `max`.
pub fn recovery_ping_delay(pings_sent: u32, recovery_interval: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(pings_sent.min(31)).unwrap_or(u32::MAX);
    recovery_interval.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lnet_arithmetic() {
        let h = Health::default();
        assert_eq!(h.value(), 1000);
        assert!(h.is_full());
        let h = h.failed(100);
        assert_eq!(h.value(), 900);
        assert!(!h.is_full());
        let h = (0..20).fold(h, |h, _| h.failed(100));
        assert_eq!(h, Health::MIN, "never below zero");
        assert_eq!(Health::new(950).failed(100).value(), 850);
        assert_eq!(Health::new(50).failed(100).value(), 0);
        assert_eq!(Health::new(950).succeeded(100), Health::MAX, "never above 1000");
        assert_eq!(Health::new(500).succeeded(100).value(), 600);
        assert_eq!(Health::new(700).failed(0).value(), 700, "sensitivity 0 turns health off");
        assert_eq!(Health::new(5000), Health::MAX);
    }

    #[test]
    fn recovery_backs_off_to_the_cap() {
        let s = Duration::from_secs;
        let delays: Vec<u64> = (0..12).map(|n| recovery_ping_delay(n, s(1), s(900)).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
        assert_eq!(recovery_ping_delay(u32::MAX, s(1), s(900)), s(900));
        assert_eq!(recovery_ping_delay(40, s(3), s(60)), s(60));
    }

    proptest! {
        #[test]
        fn health_stays_in_range_and_moves_by_sensitivity(
            start in 0u32..=1000, sens in 0u32..=1000, ops in prop::collection::vec(any::<bool>(), 0..50)
        ) {
            let mut h = Health::new(start);
            for ok in ops {
                let before = h.value();
                h = if ok { h.succeeded(sens) } else { h.failed(sens) };
                prop_assert!(h.value() <= 1000);
                let expected = if ok { (before + sens).min(1000) } else { before.saturating_sub(sens) };
                prop_assert_eq!(h.value(), expected);
            }
        }

        #[test]
        fn delay_is_monotonic_and_capped(n in 0u32..100, base in 1u64..10, max in 1u64..2000) {
            let (b, m) = (Duration::from_secs(base), Duration::from_secs(max));
            let d = recovery_ping_delay(n, b, m);
            prop_assert!(d <= m);
            prop_assert!(d <= recovery_ping_delay(n + 1, b, m));
        }
    }
}
