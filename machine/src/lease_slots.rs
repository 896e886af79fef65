//! The leases one client holds, kept as sanlock keeps them (cmd.c: `cl->tokens[]`), so that
//! inquire and status list them in 3.8.5's order. Keys are (lockspace, resource) names.

use sanlock_core::ondisk::Name;

/// A client's leases in slots as sanlock's client token array: a new lease takes the first
/// free slot, so after a release and an acquire the order is 3.8.5's, not acquisition order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeaseSlots(Vec<Option<(Name, Name)>>);

impl LeaseSlots {
    /// Takes the first free slot for `key`, unless it is held already.
    pub fn insert(&mut self, key: (Name, Name)) {
        if self.contains(&key) {
            return;
        }
        match self.0.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(key),
            None => self.0.push(Some(key)),
        }
    }

    /// Frees `key`'s slot.
    pub fn remove(&mut self, key: &(Name, Name)) {
        for slot in &mut self.0 {
            if slot.as_ref() == Some(key) {
                *slot = None;
            }
        }
    }

    /// Whether `key` is held.
    pub fn contains(&self, key: &(Name, Name)) -> bool {
        self.0.iter().any(|s| s.as_ref() == Some(key))
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The leases in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &(Name, Name)> {
        self.0.iter().flatten()
    }

    /// The leases in slot order, as a list.
    pub fn to_vec(&self) -> Vec<(Name, Name)> {
        self.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(r: &str) -> (Name, Name) {
        (Name::new(b"LS").unwrap(), Name::new(r.as_bytes()).unwrap())
    }

    #[test]
    fn a_lease_takes_the_first_free_slot_as_in_sanlocks_token_array() {
        // cmd_acquire puts a new token in the first empty slot: after R1 is released and
        // taken again, inquire lists R1 before R2 (checked against 3.8.5 by daemon_python.rs).
        let mut slots = LeaseSlots::default();
        slots.insert(key("R1"));
        slots.insert(key("R2"));
        slots.insert(key("R3"));
        slots.remove(&key("R1"));
        slots.insert(key("R4"));
        slots.insert(key("R1"));
        slots.insert(key("R2"));
        assert_eq!(slots.to_vec(), [key("R4"), key("R2"), key("R3"), key("R1")]);
        assert!(slots.contains(&key("R3")));
        for r in ["R1", "R2", "R3", "R4"] {
            slots.remove(&key(r));
        }
        assert!(slots.is_empty());
    }
}
