//! Gift IDs for gifts, transactions and audit events. Only the coordinator's leader draws
//! IDs, and it writes them into the commands it proposes, so applying a command never
//! draws one.
//!
//! Standalone, they come from giftid's generator (the one implementation of the layout),
//! with the workshop number derived from the node id as giftid-node derives it and the
//! high-water mark kept in this node's own directory. In a cluster with a `giftid`
//! service they come from its nodes instead (`generate_batch`, one request at a time,
//! rotating over them on failure), through a pool that is refilled below a low-water mark
//! so that a transaction does not wait on the network; an empty pool makes transactions
//! wait, never fall back. The pool is volatile: cleared when the node stops leading the
//! coordinator, and an ID at or below the highest of its workshop already in the
//! coordinator's log (or already handed out) is dropped, so each workshop's IDs stay in
//! order in the log across failovers.

use std::collections::{BTreeMap, VecDeque};

use giftid::generator::{Flaw, Generator};
use giftid::layout::GiftType;
use giftid::node::{load_generator, now, persist_mark, MAX_BATCH};
use maelstrom_core::{Context, InitError, Node, Outbox, Storage};

use crate::sm::coord::workshop;

/// Below this many IDs, the pool asks for more.
pub const LOW_WATER: usize = 128;
/// IDs asked for at a time (more when a transaction needs more).
pub const BATCH: usize = 256;

/// The floors under which IDs are not used: the coordinator log's highest ID, overall
/// and per workshop.
#[derive(Debug, Clone, Copy)]
pub struct Floors<'a> {
    pub highest: u64,
    pub workshops: Option<&'a BTreeMap<u16, u64>>,
}

impl Floors<'_> {
    fn of(&self, workshop: u16) -> u64 {
        self.workshops
            .and_then(|w| w.get(&workshop).copied())
            .unwrap_or(0)
    }
}

#[derive(Debug)]
pub enum Ids {
    Own(Generator),
    Service(Pool),
}

/// IDs from the giftid service, on the coordinator's leader.
#[derive(Debug, Default)]
pub struct Pool {
    nodes: Vec<String>,
    ids: VecDeque<u64>,
    /// The highest ID handed out of each workshop.
    taken: BTreeMap<u16, u64>,
    /// IDs a transaction waits for.
    demand: usize,
    asking: bool,
    next: usize,
}

impl Ids {
    pub fn load(ctx: &Context, storage: &dyn Storage) -> Result<Ids, InitError> {
        let nodes = ctx.service("giftid");
        if !nodes.is_empty() {
            return Ok(Ids::Service(Pool {
                nodes: nodes.to_vec(),
                ..Pool::default()
            }));
        }
        Ok(Ids::Own(load_generator(ctx, storage, Flaw::None)?))
    }

    /// Whether `count` IDs can be taken now (always, with the node's own generator);
    /// if not, the pool asks for enough of them.
    pub fn ready(&mut self, count: usize, floors: Floors) -> bool {
        match self {
            Ids::Own(_) => true,
            Ids::Service(pool) => {
                pool.drop_stale(floors);
                let ready = pool.ids.len() >= count;
                pool.demand = if ready { 0 } else { count };
                ready
            }
        }
    }

    /// `count` fresh IDs above the floors; a moved high-water mark (own generator) is
    /// persisted before anything sent next.
    pub fn take<N: Node>(
        &mut self,
        ctx: &Context,
        count: usize,
        floors: Floors,
        out: &mut Outbox<N>,
    ) -> Result<Vec<u64>, String> {
        match self {
            Ids::Own(generator) => {
                generator.issue_after(now(ctx), floors.highest);
                let ids = generator
                    .next_batch(now(ctx), count, GiftType::Toy)
                    .map_err(|e| e.to_string())?;
                persist_mark(generator, out);
                Ok(ids)
            }
            Ids::Service(pool) => {
                pool.drop_stale(floors);
                if pool.ids.len() < count {
                    pool.demand = count;
                    return Err("no gift IDs from the giftid service now".into());
                }
                let ids: Vec<u64> = pool.ids.drain(..count).collect();
                for &id in &ids {
                    pool.taken.insert(workshop(id), id);
                }
                Ok(ids)
            }
        }
    }

    /// The giftid node to ask and how many IDs, when the pool should be refilled and no
    /// request is out.
    pub fn want(&mut self) -> Option<(String, usize)> {
        let Ids::Service(pool) = self else {
            return None;
        };
        let target = LOW_WATER.max(pool.demand);
        if pool.asking || pool.ids.len() >= target || pool.nodes.is_empty() {
            return None;
        }
        pool.asking = true;
        let count = BATCH.max(pool.demand - pool.ids.len().min(pool.demand));
        let node = pool.nodes[pool.next % pool.nodes.len()].clone();
        Some((node, count.min(MAX_BATCH)))
    }

    /// The answer to the pool's request: IDs, or a failure (the next node is asked).
    pub fn filled(&mut self, ids: Result<Vec<u64>, String>) {
        let Ids::Service(pool) = self else {
            return;
        };
        pool.asking = false;
        match ids {
            Ok(ids) => pool.ids.extend(ids),
            Err(why) => {
                eprintln!("generate_batch failed: {why}");
                pool.next += 1;
            }
        }
    }

    /// Forgets the pool (this node no longer leads the coordinator).
    pub fn clear(&mut self) {
        if let Ids::Service(pool) = self {
            pool.ids.clear();
            pool.taken.clear();
            pool.demand = 0;
        }
    }

    /// IDs in the pool (0 with the node's own generator).
    pub fn pooled(&self) -> usize {
        match self {
            Ids::Own(_) => 0,
            Ids::Service(pool) => pool.ids.len(),
        }
    }
}

impl Pool {
    fn drop_stale(&mut self, floors: Floors) {
        let taken = &self.taken;
        self.ids.retain(|&id| {
            let w = workshop(id);
            id > floors.of(w) && id > taken.get(&w).copied().unwrap_or(0)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use giftid::layout::encode;

    fn pool() -> Ids {
        Ids::Service(Pool {
            nodes: vec!["n0".into(), "n1".into()],
            ..Pool::default()
        })
    }

    fn id(ms: u64, workshop: u16, seq: u16) -> u64 {
        encode(ms, workshop, seq, GiftType::Toy)
    }

    #[test]
    fn the_pool_refills_below_low_water_and_rotates_on_failure() {
        let mut ids = pool();
        assert_eq!(ids.want(), Some(("n0".into(), BATCH)));
        assert_eq!(ids.want(), None, "one request at a time");
        ids.filled(Err("timeout".into()));
        assert_eq!(ids.want(), Some(("n1".into(), BATCH)));
        ids.filled(Ok((0..LOW_WATER as u16).map(|s| id(5, 1, s)).collect()));
        assert_eq!(ids.want(), None, "at the low-water mark");
        let none = BTreeMap::new();
        let floors = Floors {
            highest: 0,
            workshops: Some(&none),
        };
        assert!(!ids.ready(LOW_WATER + 600, floors));
        assert_eq!(
            ids.want(),
            Some(("n1".into(), 600)),
            "a big transaction asks more"
        );
    }

    #[test]
    fn ids_not_above_the_log_or_what_was_handed_out_are_dropped() {
        let mut ids = pool();
        ids.want();
        ids.filled(Ok(vec![id(5, 1, 0), id(5, 2, 0), id(6, 1, 0), id(7, 2, 0)]));
        let log: BTreeMap<u16, u64> = [(1, id(5, 1, 0))].into();
        let floors = Floors {
            highest: id(9, 9, 0),
            workshops: Some(&log),
        };
        let mut out = Outbox::<crate::node::MatcherNode>::new();
        let ctx = Context::new("n5", vec!["n5".into()]);
        let got = ids.take(&ctx, 2, floors, &mut out).unwrap();
        assert_eq!(
            got,
            [id(5, 2, 0), id(6, 1, 0)],
            "workshop 1's first is in the log"
        );
        ids.filled(Ok(vec![id(6, 2, 0)]));
        assert_eq!(ids.take(&ctx, 1, floors, &mut out).unwrap(), [id(7, 2, 0)]);
        assert!(
            ids.take(&ctx, 1, floors, &mut out).is_err(),
            "id(6, 2) is stale"
        );
        ids.clear();
        assert_eq!(ids.pooled(), 0);
    }
}
