//! Gift IDs for gifts, transactions and audit events: giftid's generator (the one
//! implementation of the layout), with the workshop number derived from the node id as
//! giftid-node derives it and the high-water mark kept in this node's own directory.
//! Only the coordinator's leader draws IDs, and it writes them into the commands it
//! proposes, so applying a command never draws one.

use giftid::generator::{Flaw, Generator};
use giftid::layout::GiftType;
use giftid::node::{load_generator, now, persist_mark};
use maelstrom_core::{Context, InitError, Node, Outbox, Storage};

#[derive(Debug)]
pub struct Ids {
    generator: Generator,
}

impl Ids {
    pub fn load(ctx: &Context, storage: &dyn Storage) -> Result<Ids, InitError> {
        Ok(Ids {
            generator: load_generator(ctx, storage, Flaw::None)?,
        })
    }

    /// `count` fresh IDs, each above `floor` (the highest ID the coordinator's log holds);
    /// a moved high-water mark is persisted before anything sent next.
    pub fn take<N: Node>(
        &mut self,
        ctx: &Context,
        count: usize,
        floor: u64,
        out: &mut Outbox<N>,
    ) -> Result<Vec<u64>, String> {
        self.generator.issue_after(now(ctx), floor);
        let ids = self
            .generator
            .next_batch(now(ctx), count, GiftType::Toy)
            .map_err(|e| e.to_string())?;
        persist_mark(&mut self.generator, out);
        Ok(ids)
    }
}
