//! File layouts: how a file's bytes map onto objects on OSTs.
//!
//! A layout is a list of components, each covering an extent of the file
//! with its own RAID-0 pattern (PFL). Today every file has one component
//! `[0, EOF)`; storing the list from the first version on means composite
//! layouts need no format change.

use crate::fid::Fid;
use serde::{Deserialize, Serialize};

/// Stripe sizes are multiples of this.
pub const STRIPE_SIZE_UNIT: u64 = 64 * 1024;
/// The most stripes one component may have, as in Lustre.
pub const MAX_STRIPE_COUNT: u32 = 2000;
/// The file system's default: one stripe of 1 MiB.
pub const DEFAULT_STRIPE_SIZE: u64 = 1024 * 1024;
pub const DEFAULT_STRIPE_COUNT: u32 = 1;
/// The largest file offset glint accepts (as ext4's 16 TiB on 4 KiB blocks
/// times the stripes would allow more, but a single object stays under this).
pub const MAX_FILE_SIZE: u64 = 1 << 50;
/// End of a component that runs to end of file.
pub const EOF: u64 = u64::MAX;

/// One object of a striped component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeObject {
    pub ost_idx: u32,
    pub fid: Fid,
}

/// RAID-0 striping over `objects.len()` objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Raid0 {
    pub stripe_size: u64,
    /// The first OST, or `None` when the MDS chose it.
    pub stripe_offset: Option<u32>,
    pub objects: Vec<StripeObject>,
}

/// What a layout component's data looks like. Mirrors (FLR), data-on-MDT and
/// released (HSM) components are later kinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    Raid0(Raid0),
}

/// One extent `[start, end)` of a file and how it is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub start: u64,
    pub end: u64,
    pub pattern: Pattern,
}

/// A file's layout and its generation, bumped on every change so a client
/// can tell its cached copy is stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub generation: u32,
    pub components: Vec<Component>,
}

/// What a user asks for with `lfs setstripe`: each field unset means
/// "inherit".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StripeSpec {
    /// `Some(-1)` means all OSTs.
    pub stripe_count: Option<i32>,
    pub stripe_size: Option<u64>,
    pub stripe_offset: Option<u32>,
}

/// Why a striping request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("stripe size {0} is not a positive multiple of 64 KiB")]
    StripeSize(u64),
    #[error("stripe count {0} is out of range (1..=2000, or -1 for all OSTs)")]
    StripeCount(i32),
    #[error("stripe offset {offset} names no OST (the file system has {osts})")]
    StripeOffset { offset: u32, osts: u32 },
}

impl StripeSpec {
    /// Checks the values a user gave, before anything is stored.
    pub fn validate(&self) -> Result<(), LayoutError> {
        if let Some(size) = self.stripe_size
            && (size == 0 || size % STRIPE_SIZE_UNIT != 0 || size > u32::MAX as u64)
        {
            return Err(LayoutError::StripeSize(size));
        }
        if let Some(c) = self.stripe_count
            && (c == 0 || c < -1 || c > MAX_STRIPE_COUNT as i32)
        {
            return Err(LayoutError::StripeCount(c));
        }
        Ok(())
    }

    /// Fills unset fields from `parent`.
    pub fn inherit(&self, parent: &StripeSpec) -> StripeSpec {
        StripeSpec {
            stripe_count: self.stripe_count.or(parent.stripe_count),
            stripe_size: self.stripe_size.or(parent.stripe_size),
            stripe_offset: self.stripe_offset.or(parent.stripe_offset),
        }
    }

    /// The file system default: 1 stripe of 1 MiB, OST chosen by the MDS.
    pub fn fs_default() -> StripeSpec {
        StripeSpec {
            stripe_count: Some(DEFAULT_STRIPE_COUNT as i32),
            stripe_size: Some(DEFAULT_STRIPE_SIZE),
            stripe_offset: None,
        }
    }
}

/// A piece of a file byte range that falls in one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Index into the component's objects.
    pub stripe: usize,
    /// Offset within the object.
    pub obj_off: u64,
    /// Offset within the file.
    pub file_off: u64,
    pub len: u64,
}

impl Raid0 {
    pub fn stripe_count(&self) -> usize {
        self.objects.len()
    }

    /// Where file byte `off` lives: (stripe index, object offset).
    pub fn map(&self, off: u64) -> (usize, u64) {
        let size = self.stripe_size;
        let count = self.objects.len() as u64;
        let width = size * count;
        let stripe = (off % width) / size;
        let obj_off = (off / width) * size + off % size;
        (stripe as usize, obj_off)
    }

    /// The size of the file implied by an object of `obj_size` bytes at
    /// stripe `stripe`: the end of that object's last byte in file terms.
    pub fn file_size_from_object(&self, stripe: usize, obj_size: u64) -> u64 {
        if obj_size == 0 {
            return 0;
        }
        let size = self.stripe_size;
        let count = self.objects.len() as u64;
        let last = obj_size - 1;
        let full_stripes = last / size;
        full_stripes * size * count + stripe as u64 * size + last % size + 1
    }

    /// The object size that holds exactly the file bytes below `file_size`
    /// for stripe `stripe` (what truncate sets each object to).
    pub fn object_size_for(&self, stripe: usize, file_size: u64) -> u64 {
        let size = self.stripe_size;
        let count = self.objects.len() as u64;
        let width = size * count;
        let full = file_size / width;
        let rem = file_size % width;
        let start = stripe as u64 * size;
        let tail = rem.saturating_sub(start).min(size);
        full * size + tail
    }

    /// Cuts `[off, off+len)` at stripe boundaries, in file order.
    pub fn extents(&self, off: u64, len: u64) -> impl Iterator<Item = Extent> + '_ {
        let size = self.stripe_size;
        let end = off.saturating_add(len);
        let mut pos = off;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let (stripe, obj_off) = self.map(pos);
            let in_stripe = size - pos % size;
            let n = in_stripe.min(end - pos);
            let e = Extent { stripe, obj_off, file_off: pos, len: n };
            pos += n;
            Some(e)
        })
    }
}

impl Layout {
    /// A plain one-component RAID-0 layout covering the whole file.
    pub fn new_raid0(stripe_size: u64, stripe_offset: Option<u32>, objects: Vec<StripeObject>) -> Layout {
        Layout {
            generation: 1,
            components: vec![Component {
                start: 0,
                end: EOF,
                pattern: Pattern::Raid0(Raid0 { stripe_size, stripe_offset, objects }),
            }],
        }
    }

    /// The component holding byte `off`.
    pub fn component_at(&self, off: u64) -> Option<&Component> {
        self.components.iter().find(|c| c.start <= off && off < c.end)
    }

    /// The RAID-0 pattern of the first component, which is the whole file
    /// for every layout glint creates today.
    pub fn raid0(&self) -> Option<&Raid0> {
        self.components.first().map(|c| match &c.pattern {
            Pattern::Raid0(r) => r,
        })
    }

    /// Every object of every component.
    pub fn objects(&self) -> impl Iterator<Item = &StripeObject> {
        self.components.iter().flat_map(|c| match &c.pattern {
            Pattern::Raid0(r) => r.objects.iter(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r0(size: u64, count: u32) -> Raid0 {
        Raid0 {
            stripe_size: size,
            stripe_offset: None,
            objects: (0..count)
                .map(|i| StripeObject { ost_idx: i, fid: Fid::new(Fid::ost_seq(i), 1) })
                .collect(),
        }
    }

    #[test]
    fn maps_like_lustre() {
        let r = r0(65536, 4);
        assert_eq!(r.map(0), (0, 0));
        assert_eq!(r.map(65536), (1, 0));
        assert_eq!(r.map(4 * 65536), (0, 65536));
        assert_eq!(r.map(5 * 65536 + 7), (1, 65536 + 7));
    }

    #[test]
    fn validates_specs() {
        assert!(StripeSpec { stripe_size: Some(65536), ..Default::default() }.validate().is_ok());
        assert!(StripeSpec { stripe_size: Some(4096), ..Default::default() }.validate().is_err());
        assert!(StripeSpec { stripe_count: Some(-1), ..Default::default() }.validate().is_ok());
        assert!(StripeSpec { stripe_count: Some(0), ..Default::default() }.validate().is_err());
        assert!(StripeSpec { stripe_count: Some(2001), ..Default::default() }.validate().is_err());
    }

    proptest! {
        #[test]
        fn extents_tile_the_range(units in 1u64..64, count in 1u32..16, off in 0u64..(1 << 30), len in 0u64..(1 << 24)) {
            let r = r0(units * STRIPE_SIZE_UNIT, count);
            let mut pos = off;
            for e in r.extents(off, len) {
                prop_assert_eq!(e.file_off, pos);
                prop_assert!(e.len > 0 && e.len <= r.stripe_size);
                prop_assert_eq!(r.map(e.file_off), (e.stripe, e.obj_off));
                // The whole extent stays in one stripe unit of one object.
                prop_assert_eq!(e.obj_off / r.stripe_size, (e.obj_off + e.len - 1) / r.stripe_size);
                pos += e.len;
            }
            prop_assert_eq!(pos, off + len);
        }

        #[test]
        fn sizes_round_trip(units in 1u64..8, count in 1u32..8, file_size in 0u64..(1 << 26)) {
            let r = r0(units * STRIPE_SIZE_UNIT, count);
            let mut max = 0;
            for s in 0..count as usize {
                let obj = r.object_size_for(s, file_size);
                max = max.max(r.file_size_from_object(s, obj));
            }
            prop_assert_eq!(max, file_size);
        }

        #[test]
        fn map_is_a_bijection(units in 1u64..4, count in 1u32..6, off in 0u64..(1 << 22)) {
            let r = r0(units * STRIPE_SIZE_UNIT, count);
            let (s, o) = r.map(off);
            let width = r.stripe_size * count as u64;
            let back = (o / r.stripe_size) * width + s as u64 * r.stripe_size + o % r.stripe_size;
            prop_assert_eq!(back, off);
        }
    }
}
