//! Gift IDs for gifts, transactions and audit events: giftid's generator (the one
//! implementation of the layout), with the workshop number derived from the node id as
//! giftid-node derives it and the high-water mark kept in this node's own directory.
//! Only the coordinator's leader draws IDs, and it writes them into the commands it
//! proposes, so applying a command never draws one.

use giftid::generator::{Flaw, Generator};
use giftid::layout::GiftType;
use giftid::node::{now, workshop_of, MARK_FILE};
use maelstrom_core::{Context, InitError, Node, Outbox, Storage};

#[derive(Debug)]
pub struct Ids {
    generator: Generator,
}

impl Ids {
    pub fn load(ctx: &Context, storage: &dyn Storage) -> Result<Ids, InitError> {
        let workshop = workshop_of(&ctx.node_id, &ctx.node_ids).map_err(InitError::new)?;
        let mark = match storage.load(MARK_FILE) {
            Ok(None) => None,
            Ok(Some(bytes)) => Some(
                std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| InitError::new(format!("{MARK_FILE} is corrupt")))?,
            ),
            Err(e) => return Err(InitError::new(format!("cannot read {MARK_FILE}: {e}"))),
        };
        Ok(Ids {
            generator: Generator::new(workshop, mark, now(ctx), Flaw::None),
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
        if let Some(mark) = self.generator.take_mark() {
            out.persist(MARK_FILE, mark.to_string().into_bytes());
        }
        Ok(ids)
    }
}
