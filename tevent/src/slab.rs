//! A generational slab: the storage behind every event kind and every request.
//!
//! A [`Key`] names a slot *and* the generation it was issued for. Removing an
//! entry bumps the slot's generation, so a key kept after removal (a stale
//! readiness in a dispatch batch, a handle whose event already went) never
//! reaches the entry that later reuses the slot.

use std::collections::TryReserveError;

/// Index plus generation of one slab entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Key {
    idx: u32,
    generation: u32,
}

impl Key {
    /// A key that never names a live entry.
    pub(crate) const NONE: Key = Key {
        idx: u32::MAX,
        generation: u32::MAX,
    };

    /// Packs the key into a `u64` (generation in the high half).
    pub(crate) fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.idx)
    }

    /// Inverse of [`Key::to_u64`].
    pub(crate) fn from_u64(v: u64) -> Key {
        Key {
            idx: v as u32,
            generation: (v >> 32) as u32,
        }
    }

    /// The slot index (stable while the entry lives).
    pub(crate) fn index(self) -> u32 {
        self.idx
    }
}

enum Slot<T> {
    Occupied { generation: u32, val: T },
    Vacant { generation: u32, next_free: u32 },
}

/// Vector of slots with an intrusive free list. Growth doubles the vector
/// (amortised O(1)); lookups are one bounds check and one load.
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free_head: u32,
    len: usize,
}

const NO_FREE: u32 = u32::MAX;

/// The last generation a slot is given (`u32::MAX` is `Key::NONE`'s).
const LAST_GENERATION: u32 = u32::MAX - 1;

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free_head: NO_FREE,
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    #[inline]
    fn slot(&self, idx: u32) -> Option<&Slot<T>> {
        self.slots.get(idx as usize)
    }

    #[inline]
    fn slot_mut(&mut self, idx: u32) -> Option<&mut Slot<T>> {
        self.slots.get_mut(idx as usize)
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts, growing fallibly: an allocation failure is returned instead of
    /// aborting the process.
    pub(crate) fn try_insert(&mut self, val: T) -> Result<Key, TryReserveError> {
        if self.free_head == NO_FREE {
            let idx = u32::try_from(self.slots.len()).expect("slab index overflow");
            assert!(idx < NO_FREE - 1, "slab index overflow");
            self.slots.try_reserve(1)?;
            self.slots.push(Slot::Occupied { generation: 0, val });
            self.len += 1;
            return Ok(Key { idx, generation: 0 });
        }
        let idx = self.free_head;
        let slot = self.slot_mut(idx).expect("free list points at a slot");
        let Slot::Vacant {
            generation,
            next_free,
        } = *slot
        else {
            unreachable!("free list points at an occupied slot");
        };
        *slot = Slot::Occupied { generation, val };
        self.free_head = next_free;
        self.len += 1;
        Ok(Key { idx, generation })
    }

    /// Inserts; aborts like any Rust collection if memory is exhausted.
    pub(crate) fn insert(&mut self, val: T) -> Key {
        match self.try_insert(val) {
            Ok(k) => k,
            Err(e) => panic!("slab allocation failed: {e}"),
        }
    }

    /// The entry named by `key`, if it is still the same entry.
    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.slot(key.idx) {
            Some(Slot::Occupied { generation, val }) if *generation == key.generation => Some(val),
            _ => None,
        }
    }

    /// Mutable access to the entry named by `key`, if it is still the same entry.
    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slot_mut(key.idx) {
            Some(Slot::Occupied { generation, val }) if *generation == key.generation => Some(val),
            _ => None,
        }
    }

    /// The entry in slot `idx` with its current key, whatever its generation
    /// (callers check identity by other means).
    #[inline]
    pub(crate) fn get_at_mut(&mut self, idx: u32) -> Option<(Key, &mut T)> {
        match self.slot_mut(idx) {
            Some(Slot::Occupied { generation, val }) => Some((
                Key {
                    idx,
                    generation: *generation,
                },
                val,
            )),
            _ => None,
        }
    }

    /// Shared access to the entry in slot `idx`, whatever its generation.
    #[inline]
    pub(crate) fn get_at(&self, idx: u32) -> Option<&T> {
        match self.slot(idx) {
            Some(Slot::Occupied { val, .. }) => Some(val),
            _ => None,
        }
    }

    /// Removes the entry; the slot's generation moves on so `key` goes stale.
    /// Gives the occupied slot of `key` a new generation: `key` no longer
    /// finds it, the returned key does. A value reused under a new identity
    /// (a parked fd watcher taken over) is thus never reached through a key
    /// handed out for its previous life.
    pub(crate) fn rekey(&mut self, key: Key) -> Option<Key> {
        match self.slot_mut(key.idx) {
            Some(Slot::Occupied { generation, .. }) if *generation == key.generation => {
                if key.generation < LAST_GENERATION {
                    let next = key.generation + 1;
                    *generation = next;
                    return Some(Key {
                        idx: key.idx,
                        generation: next,
                    });
                }
            }
            _ => return None,
        }
        // Its last generation: the slot is retired and the value moves to
        // another (see `remove`).
        let val = self.remove(key)?;
        Some(self.insert(val))
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let free_head = self.free_head;
        let slot = self.slot_mut(key.idx)?;
        match slot {
            Slot::Occupied { generation, .. } if *generation == key.generation => {}
            _ => return None,
        }
        // A generation never comes back: a slot that used its last one is
        // retired (left vacant, never reused), so that a key kept for ever
        // (a handle leaked with `mem::forget`) can never reach a later
        // entry, however many times the slot was reused (4 294 967 295).
        let retire = key.generation >= LAST_GENERATION;
        let old = std::mem::replace(
            slot,
            Slot::Vacant {
                generation: if retire {
                    LAST_GENERATION
                } else {
                    key.generation + 1
                },
                next_free: if retire { NO_FREE } else { free_head },
            },
        );
        if !retire {
            self.free_head = key.idx;
        }
        self.len -= 1;
        match old {
            Slot::Occupied { val, .. } => Some(val),
            Slot::Vacant { .. } => unreachable!(),
        }
    }

    /// Keys of all live entries, in slot order.
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Occupied { generation, .. } => Some(Key {
                    idx: i as u32,
                    generation: *generation,
                }),
                Slot::Vacant { .. } => None,
            })
            .collect()
    }

    /// Iterates over live entries with their keys, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Occupied { generation, val } => Some((
                Key {
                    idx: i as u32,
                    generation: *generation,
                },
                val,
            )),
            Slot::Vacant { .. } => None,
        })
    }

    /// Iterates over live entries.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|s| match s {
            Slot::Occupied { val, .. } => Some(val),
            Slot::Vacant { .. } => None,
        })
    }

    /// Takes every live entry out, leaving the slab empty (generations kept).
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let keys = self.keys();
        keys.into_iter().filter_map(|k| self.remove(k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_never_reach_a_reused_slot() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.index(), b.index(), "slot is reused");
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(Key::from_u64(b.to_u64()), b);
    }

    #[test]
    fn a_rekeyed_slot_answers_only_its_new_key() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.rekey(a).expect("occupied");
        assert_eq!(a.index(), b.index(), "same slot, same value");
        assert_ne!(a, b);
        assert_eq!(s.get(a), None, "the old key is stale");
        assert_eq!(s.get(b), Some(&"a"));
        assert_eq!(s.rekey(a), None, "a stale key cannot rekey");
        assert_eq!(s.remove(a), None);
        assert_eq!(s.remove(b), Some("a"));
        assert_eq!(s.rekey(b), None, "nor can a key of a vacant slot");
        let c = s.insert("c");
        assert!(s.get(a).is_none() && s.get(b).is_none() && s.get(c) == Some(&"c"));
    }

    #[test]
    fn a_slot_whose_generations_are_used_up_is_retired_never_reused() {
        let mut s = Slab::default();
        let a = s.insert("a");
        // Fast-forward the slot to its last generation.
        let Some(Slot::Occupied { generation, .. }) = s.slot_mut(a.idx) else {
            unreachable!()
        };
        *generation = LAST_GENERATION;
        let last = Key {
            idx: a.idx,
            generation: LAST_GENERATION,
        };
        assert_eq!(s.remove(last), Some("a"));
        let b = s.insert("b");
        assert_ne!(b.index(), a.index(), "the retired slot is not reused");
        for stale in [a, last] {
            assert_eq!(s.get(stale), None);
            assert_eq!(s.remove(stale), None);
        }
        // Rekeying at the last generation moves the value to a new slot.
        let Some(Slot::Occupied { generation, .. }) = s.slot_mut(b.idx) else {
            unreachable!()
        };
        *generation = LAST_GENERATION;
        let b_last = Key {
            idx: b.idx,
            generation: LAST_GENERATION,
        };
        let moved = s.rekey(b_last).expect("occupied");
        assert_ne!(moved.index(), b.index());
        assert_eq!(s.get(b_last), None);
        assert_eq!(s.get(moved), Some(&"b"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn len_and_drain() {
        let mut s = Slab::default();
        let keys: Vec<_> = (0..10).map(|i| s.insert(i)).collect();
        s.remove(keys[3]);
        assert_eq!(s.len(), 9);
        let mut all = s.drain();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 4, 5, 6, 7, 8, 9]);
        assert_eq!(s.len(), 0);
    }
}
