//! Counters. Each layer (capture, TCP, files) and each protocol keeps its own struct of plain
//! integers, owned by one worker (no atomics on the hot path), declared with [`counters!`]. The
//! runtime reads them through [`CounterSet`], a snapshot of `area.name = value` triples that
//! merges across workers and feeds the summary and `/metrics` without knowing which protocols
//! exist.

use std::collections::HashMap;

/// Declares a struct of `u64` counters with a visitor and a merge.
///
/// ```
/// xdpcarve_contract::counters! {
///     /// Counters of a toy protocol.
///     pub struct ToyStats {
///         /// Messages seen.
///         messages,
///         errors,
///     }
/// }
/// let mut s = ToyStats::default();
/// s.messages += 2;
/// let mut seen = Vec::new();
/// s.for_each(|name, v| seen.push((name, v)));
/// assert_eq!(seen, [("messages", 2), ("errors", 0)]);
/// ```
#[macro_export]
macro_rules! counters {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* $field:ident ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name { $( $(#[$fm])* pub $field: u64, )* }

        impl $name {
            /// Visits every counter by name, in declaration order.
            pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
                $( f(stringify!($field), self.$field); )*
            }
            pub fn merge(&mut self, other: &Self) {
                $( self.$field += other.$field; )*
            }
            /// Adds every counter to `set` under `area`.
            pub fn add_to(&self, area: &'static str, set: &mut $crate::CounterSet) {
                self.for_each(|name, v| set.add(area, name, v));
            }
        }
    };
}

/// A snapshot of named counters: `(area, name, value)` in first-seen order. Two protocols may
/// report into the same area (HTTP and SMTP both parse MIME): their values add up.
#[derive(Clone, Debug, Default)]
pub struct CounterSet {
    entries: Vec<(&'static str, &'static str, u64)>,
    index: HashMap<(&'static str, &'static str), usize>,
}

impl PartialEq for CounterSet {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for CounterSet {}

impl CounterSet {
    pub fn new() -> Self {
        CounterSet::default()
    }

    /// Adds `value` to `area.name`, creating it at the end if new.
    pub fn add(&mut self, area: &'static str, name: &'static str, value: u64) {
        match self.index.get(&(area, name)) {
            Some(&i) => self.entries[i].2 += value,
            None => {
                self.index.insert((area, name), self.entries.len());
                self.entries.push((area, name, value));
            }
        }
    }

    /// Adds every counter of `other`.
    pub fn merge(&mut self, other: &CounterSet) {
        for &(area, name, v) in &other.entries {
            self.add(area, name, v);
        }
    }

    /// The value of `area.name`, 0 if it was never reported.
    pub fn get(&self, area: &str, name: &str) -> u64 {
        self.index.get(&(area, name)).map_or(0, |&i| self.entries[i].2)
    }

    /// Visits every counter as (area, name, value), in first-seen order.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, &'static str, u64)) {
        for &(area, name, v) in &self.entries {
            f(area, name, v);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::counters! {
        pub struct DemoStats { gaps, files }
    }

    #[test]
    fn merge_and_visit() {
        let mut a = DemoStats { gaps: 2, files: 0 };
        let b = DemoStats { gaps: 3, files: 1 };
        a.merge(&b);
        let mut set = CounterSet::new();
        a.add_to("tcp", &mut set);
        b.add_to("mime", &mut set);
        b.add_to("mime", &mut set);
        let mut seen = Vec::new();
        set.for_each(|area, name, v| {
            if v > 0 {
                seen.push((area, name, v))
            }
        });
        assert_eq!(
            seen,
            vec![
                ("tcp", "gaps", 5),
                ("tcp", "files", 1),
                ("mime", "gaps", 6),
                ("mime", "files", 2)
            ]
        );
        assert_eq!(set.get("mime", "files"), 2);
        assert_eq!(set.get("smtp", "files"), 0);
        let mut total = set.clone();
        total.merge(&set);
        assert_eq!(total.get("tcp", "gaps"), 10);
        assert_eq!(total.len(), 4);
    }
}
