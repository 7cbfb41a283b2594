//! The Maelstrom node: the generator behind `generate` (Maelstrom's `unique-ids` request,
//! plus an optional gift type), `generate_batch`, `decode` and `health`.
//!
//! The reply to `generate` carries `id` and nothing else, since Maelstrom's schema for
//! `generate_ok` is closed. Requests the generator cannot serve yet (demand above capacity
//! for a whole second) wait in order and are retried on a timer, never refused. The
//! high-water mark is persisted through the runtime, which writes it before any reply.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use maelstrom_core::{Context, ErrorCode, InitError, Message, Node, Outbox, ReplyTo, Storage};
use serde::{Deserialize, Serialize};

use crate::generator::{Exhausted, Flaw, Generator, Health, Now};
use crate::layout::{self, GiftType, WORKSHOPS};

/// The most IDs one `generate_batch` may ask for.
pub const MAX_BATCH: usize = 1000;
/// The file holding the high-water mark (ms since the layout's epoch, decimal).
pub const MARK_FILE: &str = "high-water-mark";

/// A flaw set from the command line before the node starts, for the harness's tests.
pub static FLAW: OnceLock<Flaw> = OnceLock::new();

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    Generate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gift_type: Option<GiftType>,
    },
    GenerateOk {
        id: u64,
    },
    GenerateBatch {
        count: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gift_type: Option<GiftType>,
    },
    GenerateBatchOk {
        ids: Vec<u64>,
    },
    /// Any JSON, so that a bad id gets a clear error rather than a parse failure.
    Decode {
        id: serde_json::Value,
    },
    DecodeOk {
        id: u64,
        timestamp_ms: u64,
        workshop: u16,
        sequence: u16,
        gift_type: GiftType,
    },
    Health,
    HealthOk {
        #[serde(flatten)]
        health: Health,
    },
}

#[derive(Debug)]
pub enum Timer {
    Retry,
}

/// A request waiting for capacity.
#[derive(Debug)]
struct Waiting {
    from: ReplyTo,
    count: Option<usize>,
    gift_type: GiftType,
}

#[derive(Debug)]
pub struct GiftIds {
    generator: Generator,
    waiting: VecDeque<Waiting>,
}

/// The workshop of `node_id`: the number it ends with (`n7` is 7) when every node's number
/// is distinct and below 1024, else its position in `node_ids` when there are at most 1024.
pub fn workshop_of(node_id: &str, node_ids: &[String]) -> Result<u16, String> {
    let number = |id: &str| -> Option<u64> {
        let digits = id.trim_start_matches(|c: char| !c.is_ascii_digit());
        (!digits.is_empty()).then(|| digits.parse().ok()).flatten()
    };
    let numbers: Option<Vec<u64>> = node_ids.iter().map(|id| number(id)).collect();
    if let Some(mut numbers) = numbers {
        numbers.sort_unstable();
        let distinct = numbers.windows(2).all(|w| w[0] != w[1]);
        if distinct && numbers.iter().all(|n| *n < WORKSHOPS) {
            if let Some(n) = number(node_id) {
                return Ok(n as u16);
            }
        }
    }
    if node_ids.len() as u64 > WORKSHOPS {
        return Err(format!(
            "{} nodes cannot be mapped onto {WORKSHOPS} distinct workshops",
            node_ids.len()
        ));
    }
    node_ids
        .iter()
        .position(|id| id == node_id)
        .map(|i| i as u16)
        .ok_or_else(|| format!("node {node_id} is not in node_ids {node_ids:?}"))
}

/// The generator of the workshop `ctx` names, resuming from the high-water mark in
/// `storage` (none on a first start).
pub fn load_generator(
    ctx: &Context,
    storage: &dyn Storage,
    flaw: Flaw,
) -> Result<Generator, InitError> {
    let workshop = workshop_of(&ctx.node_id, &ctx.node_ids).map_err(InitError::new)?;
    let mark = match storage.load(MARK_FILE) {
        Ok(None) => None,
        Ok(Some(bytes)) => Some(
            parse_mark(&bytes).map_err(|_| InitError::new(format!("{MARK_FILE} is corrupt")))?,
        ),
        Err(e) => return Err(InitError::new(format!("cannot read {MARK_FILE}: {e}"))),
    };
    Ok(Generator::new(workshop, mark, now(ctx), flaw))
}

/// A stored high-water mark, or the text that is not one.
pub fn parse_mark(bytes: &[u8]) -> Result<u64, String> {
    let text = String::from_utf8_lossy(bytes);
    text.trim().parse::<u64>().map_err(|_| text.into_owned())
}

/// Persists the generator's high-water mark if it moved; the runtime writes it before
/// anything sent after it.
pub fn persist_mark<N: Node>(generator: &mut Generator, out: &mut Outbox<N>) {
    if let Some(mark) = generator.take_mark() {
        out.persist(MARK_FILE, mark.to_string().into_bytes());
    }
}

pub fn now(ctx: &Context) -> Now {
    Now {
        wall_unix_ms: ctx
            .wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        mono_ms: ctx.now_ms(),
    }
}

impl GiftIds {
    /// Serves `w` now if the generator can, persisting a moved mark first.
    fn serve(
        &mut self,
        ctx: &Context,
        w: &Waiting,
        out: &mut Outbox<Self>,
    ) -> Result<(), Exhausted> {
        let now = now(ctx);
        let reply = match w.count {
            None => Msg::GenerateOk {
                id: self.generator.next(now, w.gift_type)?,
            },
            Some(count) => Msg::GenerateBatchOk {
                ids: self.generator.next_batch(now, count, w.gift_type)?,
            },
        };
        persist_mark(&mut self.generator, out);
        out.reply(&w.from, reply);
        Ok(())
    }

    /// Serves waiting requests in order until one must wait again.
    fn drain(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        while let Some(w) = self.waiting.pop_front() {
            match self.serve(ctx, &w, out) {
                Ok(()) => {}
                Err(Exhausted::Lead { retry_in_ms }) => {
                    self.waiting.push_front(w);
                    out.set_timer(Duration::from_millis(retry_in_ms), Timer::Retry);
                    return;
                }
                Err(e @ Exhausted::OutOfRange) => {
                    out.reply_error(&w.from, ErrorCode::Abort, e.to_string());
                }
            }
        }
    }
}

impl Node for GiftIds {
    type Msg = Msg;
    type Timer = Timer;
    type Call = ();

    fn init(ctx: &Context, storage: &dyn Storage, _: &mut Outbox<Self>) -> Result<Self, InitError> {
        let flaw = FLAW.get().copied().unwrap_or_default();
        Ok(GiftIds {
            generator: load_generator(ctx, storage, flaw)?,
            waiting: VecDeque::new(),
        })
    }

    fn on_message(&mut self, ctx: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
        let (from, payload) = msg.into_parts();
        let (count, gift_type) = match payload {
            Msg::Generate { gift_type } => (None, gift_type),
            Msg::GenerateBatch { count, gift_type } => {
                if !(1..=MAX_BATCH).contains(&count) {
                    let text = format!("count must be 1 to {MAX_BATCH}, got {count}");
                    out.reply_error(&from, ErrorCode::MalformedRequest, text);
                    return;
                }
                (Some(count), gift_type)
            }
            Msg::Decode { id } => {
                let reply = match id.as_i64().map(layout::decode) {
                    Some(Ok(p)) => Msg::DecodeOk {
                        id: id.as_u64().unwrap_or_default(),
                        timestamp_ms: p.unix_ms(),
                        workshop: p.workshop,
                        sequence: p.sequence,
                        gift_type: p.gift_type,
                    },
                    Some(Err(e)) => {
                        out.reply_error(&from, ErrorCode::MalformedRequest, e.to_string());
                        return;
                    }
                    None => {
                        let text =
                            format!("{id} is not a gift ID: gift IDs are positive 64-bit integers");
                        out.reply_error(&from, ErrorCode::MalformedRequest, text);
                        return;
                    }
                };
                out.reply(&from, reply);
                return;
            }
            Msg::Health => {
                let health = self.generator.health(now(ctx));
                out.reply(&from, Msg::HealthOk { health });
                return;
            }
            Msg::GenerateOk { .. }
            | Msg::GenerateBatchOk { .. }
            | Msg::DecodeOk { .. }
            | Msg::HealthOk { .. } => return,
        };
        let w = Waiting {
            from,
            count,
            gift_type: gift_type.unwrap_or_default(),
        };
        self.waiting.push_back(w);
        if self.waiting.len() == 1 {
            self.drain(ctx, out);
        }
    }

    fn on_timer(&mut self, ctx: &Context, Timer::Retry: Timer, out: &mut Outbox<Self>) {
        self.drain(ctx, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn workshops_come_from_node_numbers_or_positions() {
        let cluster = ids(&["n0", "n7", "n1023"]);
        assert_eq!(workshop_of("n7", &cluster), Ok(7));
        assert_eq!(workshop_of("n1023", &cluster), Ok(1023));
        let named = ids(&["north", "south"]);
        assert_eq!(workshop_of("south", &named), Ok(1));
        // n1024 is out of range: positions are used instead.
        let big = ids(&["n5", "n1024"]);
        assert_eq!(workshop_of("n1024", &big), Ok(1));
        let too_many: Vec<String> = (0..1025).map(|i| format!("n{i}")).collect();
        let err = workshop_of("n3", &too_many).unwrap_err();
        assert!(err.contains("1025 nodes cannot be mapped"), "{err}");
    }
}
