//! The replicated log: a snapshot's last index and term, then the entries after it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub type Term = u64;
pub type Index = u64;

/// One log entry. `command` is `None` for the no-op a new leader appends to commit its term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry<C> {
    pub term: Term,
    pub index: Index,
    pub command: Option<C>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Log<C> {
    /// Everything up to here lives in the snapshot.
    pub snapshot_index: Index,
    pub snapshot_term: Term,
    entries: VecDeque<Entry<C>>,
}

impl<C: Clone> Log<C> {
    pub fn new() -> Self {
        Log {
            snapshot_index: 0,
            snapshot_term: 0,
            entries: VecDeque::new(),
        }
    }

    pub fn last_index(&self) -> Index {
        self.entries.back().map_or(self.snapshot_index, |e| e.index)
    }

    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot_term, |e| e.term)
    }

    /// The term at `index`, if the log still knows it.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.get(index).map(|e| e.term)
    }

    pub fn get(&self, index: Index) -> Option<&Entry<C>> {
        let offset = index.checked_sub(self.snapshot_index + 1)?;
        self.entries.get(offset as usize)
    }

    pub fn append(&mut self, term: Term, command: Option<C>) -> Index {
        let index = self.last_index() + 1;
        self.entries.push_back(Entry {
            term,
            index,
            command,
        });
        index
    }

    /// Entries `from..=to`, at most `max` of them.
    pub fn slice(&self, from: Index, to: Index, max: usize) -> Vec<Entry<C>> {
        (from..=to)
            .take(max)
            .map_while(|i| self.get(i).cloned())
            .collect()
    }

    /// Drops entries after `index` (a conflicting suffix).
    pub fn truncate_after(&mut self, index: Index) {
        let keep = index.saturating_sub(self.snapshot_index) as usize;
        self.entries.truncate(keep);
    }

    /// Appends `entries` after `prev`, replacing a conflicting suffix but never a matching
    /// one (a stale, shorter append must not erase newer entries). Returns whether the log
    /// changed.
    pub fn merge(&mut self, entries: Vec<Entry<C>>) -> bool {
        self.splice(entries).is_some()
    }

    /// [`Log::merge`], returning the lowest index it wrote (the log from there on is new,
    /// and what was there before is gone), so storage can rewrite only that.
    pub fn splice(&mut self, entries: Vec<Entry<C>>) -> Option<Index> {
        let mut changed = None;
        for entry in entries {
            let index = entry.index;
            if index <= self.snapshot_index {
                continue;
            }
            match self.term(entry.index) {
                Some(t) if t == entry.term => continue,
                Some(_) => {
                    self.truncate_after(entry.index - 1);
                    self.entries.push_back(entry);
                }
                None => self.entries.push_back(entry),
            }
            changed = changed.or(Some(index));
        }
        changed
    }

    /// The first index of the term at `index`, for fast backtracking.
    pub fn first_index_of_term(&self, index: Index) -> Index {
        let Some(term) = self.term(index) else {
            return index;
        };
        let mut first = index;
        while first > self.snapshot_index + 1 && self.term(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// The last index holding `term`, if any entry does.
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.term == term)
            .map(|e| e.index)
    }

    /// Forgets entries up to `index` (now in a snapshot with `term`).
    pub fn compact(&mut self, index: Index, term: Term) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            self.entries.pop_front();
        }
        if self.entries.front().is_some_and(|e| e.index != index + 1) {
            self.entries.clear();
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Replaces everything with a snapshot at `index`/`term`, keeping a matching suffix.
    pub fn restore(&mut self, index: Index, term: Term) {
        if self.term(index) == Some(term) {
            self.compact(index, term);
        } else {
            self.entries.clear();
            self.snapshot_index = index;
            self.snapshot_term = term;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<C: Clone> Default for Log<C> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(terms: &[Term]) -> Log<u8> {
        let mut l = Log::new();
        for t in terms {
            l.append(*t, None);
        }
        l
    }

    #[test]
    fn merge_replaces_conflicts_but_keeps_newer_matching_entries() {
        let mut l = log(&[1, 1, 2, 2]);
        let stale = vec![Entry {
            term: 1,
            index: 2,
            command: None,
        }];
        assert!(!l.merge(stale));
        assert_eq!(l.last_index(), 4, "a stale append erases nothing");
        let conflict = vec![Entry {
            term: 3,
            index: 3,
            command: None,
        }];
        assert!(l.merge(conflict));
        assert_eq!((l.last_index(), l.last_term()), (3, 3));
    }

    #[test]
    fn terms_boundaries_and_compaction() {
        let mut l = log(&[1, 1, 2, 2, 2, 3]);
        assert_eq!(l.first_index_of_term(5), 3);
        assert_eq!(l.last_index_of_term(2), Some(5));
        l.compact(4, 2);
        assert_eq!(l.term(4), Some(2));
        assert_eq!(l.get(4), None);
        assert_eq!(l.get(5).map(|e| e.term), Some(2));
        assert_eq!(l.slice(5, 9, 10).len(), 2);
        l.restore(10, 4);
        assert_eq!((l.last_index(), l.last_term(), l.len()), (10, 4, 0));
    }
}
