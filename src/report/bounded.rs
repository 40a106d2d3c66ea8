//! [`Bounded`]: a list that grows per event (anomalies, unanswered
//! requests) kept to the first N items of each kind, with every item
//! counted by kind. One mechanism for the analyzer's report and the `flows`
//! sink: memory stays bounded whatever the capture holds.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

/// Examples of each kind kept by default (`--max-examples`).
pub const DEFAULT_MAX_EXAMPLES: usize = 1000;

/// An item of a [`Bounded`] list: what kind it is (the unit of the cap and
/// of the counts).
pub trait Kinded {
    type Kind: Ord + Clone + Serialize;
    fn kind(&self) -> Self::Kind;
}

/// The first `max_per_kind` items of each kind, in arrival order, and how
/// many of each kind there were. Serializes as the list of kept items (the
/// shape an unbounded list had); [`Bounded::overflow`] says what was left out.
#[derive(Debug, Clone)]
pub struct Bounded<T: Kinded> {
    max_per_kind: usize,
    kept: Vec<T>,
    /// Items seen per kind, kept or not.
    counts: BTreeMap<T::Kind, u64>,
}

impl<T: Kinded> Default for Bounded<T> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EXAMPLES)
    }
}

/// What a [`Bounded`] list left out, for the report: present only when
/// something was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overflow<K: Ord> {
    /// Items counted but not listed.
    pub omitted: u64,
    /// The cap: items listed per kind at most.
    pub max_per_kind: usize,
    /// Items seen per kind, listed or not.
    pub counts: BTreeMap<K, u64>,
}

impl<T: Kinded> Bounded<T> {
    pub fn new(max_per_kind: usize) -> Self {
        Bounded {
            max_per_kind,
            kept: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Changes the cap; only for an empty list (items already left out
    /// cannot come back).
    pub fn set_max_per_kind(&mut self, n: usize) {
        debug_assert!(self.counts.is_empty(), "cap changed after the first item");
        self.max_per_kind = n;
    }

    pub fn max_per_kind(&self) -> usize {
        self.max_per_kind
    }

    /// Counts `item`; keeps it if fewer than the cap of its kind are kept.
    /// Returns whether it was kept.
    pub fn push(&mut self, item: T) -> bool {
        let n = self.counts.entry(item.kind()).or_default();
        *n += 1;
        // The first `max_per_kind` of a kind are kept: the count says how many are.
        let keep = *n <= self.max_per_kind as u64;
        if keep {
            self.kept.push(item);
        }
        keep
    }

    /// Items seen, kept or not.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Items counted but not kept.
    pub fn omitted(&self) -> u64 {
        self.total() - self.kept.len() as u64
    }

    /// Items seen per kind, kept or not.
    pub fn counts(&self) -> &BTreeMap<T::Kind, u64> {
        &self.counts
    }

    /// The kept items, to sort them.
    pub fn kept_mut(&mut self) -> &mut [T] {
        &mut self.kept
    }

    /// What was left out, if anything was.
    pub fn overflow(&self) -> Option<Overflow<T::Kind>> {
        let omitted = self.omitted();
        (omitted > 0).then(|| Overflow {
            omitted,
            max_per_kind: self.max_per_kind,
            counts: self.counts.clone(),
        })
    }
}

impl<T: Kinded> std::ops::Deref for Bounded<T> {
    type Target = [T];

    /// The kept items.
    fn deref(&self) -> &[T] {
        &self.kept
    }
}

impl<T: Kinded + Serialize> Serialize for Bounded<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.kept.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize)]
    struct Item(&'static str, u32);

    impl Kinded for Item {
        type Kind = &'static str;
        fn kind(&self) -> &'static str {
            self.0
        }
    }

    #[test]
    fn keeps_the_first_n_of_each_kind_and_counts_all() {
        let mut b = Bounded::new(2);
        for i in 0..5 {
            b.push(Item("gap", i));
            if i < 2 {
                b.push(Item("resync", i));
            }
        }
        let kept: Vec<_> = b.iter().cloned().collect();
        assert_eq!(
            kept,
            [
                Item("gap", 0),
                Item("resync", 0),
                Item("gap", 1),
                Item("resync", 1)
            ]
        );
        assert_eq!((b.total(), b.omitted()), (7, 3));
        let o = b.overflow().expect("over the cap");
        assert_eq!(o.omitted, 3);
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"omitted":3,"max_per_kind":2,"counts":{"gap":5,"resync":2}}"#
        );
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"[["gap",0],["resync",0],["gap",1],["resync",1]]"#
        );
    }

    #[test]
    fn under_the_cap_it_is_a_plain_list() {
        let mut b = Bounded::new(2);
        b.push(Item("gap", 1));
        b.push(Item("gap", 2));
        assert_eq!(b.overflow(), None);
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"[["gap",1],["gap",2]]"#
        );
        // A cap of 0 keeps nothing and still counts.
        let mut z = Bounded::new(0);
        assert!(!z.push(Item("gap", 1)));
        assert_eq!((z.len(), z.total()), (0, 1));
    }
}
