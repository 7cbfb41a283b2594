//! The ID generator: a pure state machine fed with the wall clock and a monotonic clock.
//!
//! Time is hostile, so the generator never trusts the wall clock alone. Its *reference*
//! time is the later of the wall clock and the last wall reading it accepted plus the
//! monotonic time elapsed since: a wall clock that jumps back, stalls or runs slow is
//! carried forward at real speed; one that runs fast or jumps forward is followed.
//!
//! An ID's timestamp is the reference time, or the last timestamp used if that is later,
//! so IDs never decrease. When the 4096 sequence numbers of a millisecond are used up, the
//! generator borrows the next millisecond rather than waiting, so demand above 4,096,000
//! IDs per second uses every slot; it refuses ([`Exhausted`]) only once it would run more
//! than [`MAX_LEAD_MS`] ahead of the reference time.
//!
//! Across restarts it keeps a high-water mark: before an ID's timestamp passes the mark,
//! the mark moves [`LEASE_MS`] ahead and must be persisted (see [`Generator::take_mark`]);
//! a restarted generator starts above it, whatever the wall clock says by then. That costs
//! one small write per second of IDs, not one per ID.

use crate::layout::{self, GiftType, EPOCH_UNIX_MS, SEQUENCES, TIMESTAMP_LIMIT};

/// How far sequence borrowing may take IDs ahead of the reference time.
pub const MAX_LEAD_MS: u64 = 1_000;
/// How far the persisted high-water mark runs ahead of the IDs issued.
pub const LEASE_MS: u64 = 1_000;

/// The two clocks, read by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall_unix_ms: u64,
    /// Any monotonic clock in milliseconds (e.g. since the process started).
    pub mono_ms: u64,
}

/// Test-only ways to be wrong, each the mistake a real generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flaw {
    #[default]
    None,
    /// Takes the wall clock as it is: a backward jump reuses old timestamps.
    IgnoreClockRegressions,
    /// Keeps no high-water mark: a restart after the clock went back repeats IDs.
    ForgetHighWaterMark,
}

/// No ID can be issued now; try again after `retry_in_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// Demand above capacity used up the allowed lead.
    Lead { retry_in_ms: u64 },
    /// The layout's timestamp range ends (2059-11-04).
    OutOfRange,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exhausted::Lead { retry_in_ms } => write!(
                f,
                "more than {} IDs per millisecond requested for {MAX_LEAD_MS} ms; retry in {retry_in_ms} ms",
                SEQUENCES
            ),
            Exhausted::OutOfRange => f.write_str("the gift ID timestamp range has ended"),
        }
    }
}

impl std::error::Error for Exhausted {}

/// What `health` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    pub workshop: u16,
    pub last_timestamp_ms: u64,
    pub issued: u64,
    pub clock_regressions: u64,
    pub lead_ms: u64,
    pub sequence_exhaustions: u64,
    pub high_water_mark_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Generator {
    workshop: u16,
    flaw: Flaw,
    /// Timestamp (ms since the layout's epoch) of the current millisecond.
    last: u64,
    /// Next unused sequence number in `last`; `SEQUENCES` when used up.
    next_seq: u64,
    anchor_wall: u64,
    anchor_mono: u64,
    last_wall: u64,
    /// Every issued timestamp is at most this (ms since the epoch).
    mark: u64,
    mark_dirty: bool,
    issued: u64,
    regressions: u64,
    exhaustions: u64,
}

impl Generator {
    /// A generator for `workshop` (below 1024), resuming above `mark` if one was persisted.
    pub fn new(workshop: u16, mark: Option<u64>, now: Now, flaw: Flaw) -> Generator {
        let wall = since_epoch(now.wall_unix_ms);
        let mark = if flaw == Flaw::ForgetHighWaterMark {
            None
        } else {
            mark
        };
        let (last, next_seq, anchor_wall) = match mark {
            // Start past the mark (its millisecond may have been fully used), but anchor the
            // reference only as far ahead as the next ID needs: anchoring at the mark would
            // add a lease of lead at every restart.
            Some(m) if m >= wall => (m, SEQUENCES, wall.max((m + 1).saturating_sub(MAX_LEAD_MS))),
            _ => (wall, 0, wall),
        };
        Generator {
            workshop,
            flaw,
            last,
            next_seq,
            anchor_wall,
            anchor_mono: now.mono_ms,
            last_wall: wall,
            mark: mark.unwrap_or(0),
            mark_dirty: false,
            issued: 0,
            regressions: 0,
            exhaustions: 0,
        }
    }

    /// The best estimate of the current time, in ms since the epoch.
    fn reference(&mut self, now: Now) -> u64 {
        let wall = since_epoch(now.wall_unix_ms);
        if wall < self.last_wall {
            self.regressions += 1;
        }
        self.last_wall = wall;
        if self.flaw == Flaw::IgnoreClockRegressions {
            return wall;
        }
        let projected = self.anchor_wall + now.mono_ms.saturating_sub(self.anchor_mono);
        if wall >= projected {
            self.anchor_wall = wall;
            self.anchor_mono = now.mono_ms;
            wall
        } else {
            projected
        }
    }

    /// One ID of `gift_type`.
    #[inline]
    pub fn next(&mut self, now: Now, gift_type: GiftType) -> Result<u64, Exhausted> {
        let reference = self.reference(now);
        self.claim(reference, gift_type)
    }

    /// `count` consecutive IDs, all stamped against one reading of the clocks; on
    /// exhaustion, none.
    pub fn next_batch(
        &mut self,
        now: Now,
        count: usize,
        gift_type: GiftType,
    ) -> Result<Vec<u64>, Exhausted> {
        let reference = self.reference(now);
        let saved = self.clone();
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            match self.claim(reference, gift_type) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    *self = saved;
                    return Err(e);
                }
            }
        }
        Ok(ids)
    }

    #[inline]
    fn claim(&mut self, reference: u64, gift_type: GiftType) -> Result<u64, Exhausted> {
        if reference > self.last
            || (self.flaw == Flaw::IgnoreClockRegressions && reference < self.last)
        {
            self.last = reference;
            self.next_seq = 0;
        } else if self.next_seq == SEQUENCES {
            if self.last + 1 > reference + MAX_LEAD_MS {
                return Err(Exhausted::Lead {
                    retry_in_ms: self.last + 1 - reference - MAX_LEAD_MS,
                });
            }
            self.last += 1;
            self.next_seq = 0;
            self.exhaustions += 1;
        }
        if self.last >= TIMESTAMP_LIMIT {
            return Err(Exhausted::OutOfRange);
        }
        if self.last > self.mark && self.flaw != Flaw::ForgetHighWaterMark {
            // A lease ahead of the reference, not of `last`: a restart anchors at most
            // `MAX_LEAD_MS` below the mark, so lead borrowed before a crash is not
            // carried over into the next run's clock.
            self.mark = self.last.max(reference + LEASE_MS);
            self.mark_dirty = true;
        }
        let id = layout::encode(self.last, self.workshop, self.next_seq as u16, gift_type);
        self.next_seq += 1;
        self.issued += 1;
        Ok(id)
    }

    /// Every ID issued from now on is greater than `id`, an ID another workshop issued
    /// that must sort before ours (a leader taking over from one whose clock ran ahead).
    /// The reference time is carried forward to just below that ID's millisecond, as after
    /// a restart above the mark, so the IDs that follow need no lead.
    pub fn issue_after(&mut self, now: Now, id: u64) {
        let Ok(parts) = layout::decode(id as i64) else {
            return;
        };
        // Move on only if our next ID would not sort above `id`: most often `id` is this
        // generator's own latest, and the rest of its millisecond stays usable.
        let next_is_above = self.next_seq < SEQUENCES
            && layout::encode(
                self.last,
                self.workshop,
                self.next_seq as u16,
                GiftType::Toy,
            ) > id;
        if parts.timestamp > self.last || (parts.timestamp == self.last && !next_is_above) {
            self.last = parts.timestamp;
            self.next_seq = SEQUENCES;
        }
        let floor = (parts.timestamp + 1).saturating_sub(MAX_LEAD_MS);
        if self.reference(now) < floor {
            self.anchor_wall = floor;
            self.anchor_mono = now.mono_ms;
        }
    }

    /// The high-water mark to persist, once each time it moves; it must be durable before
    /// any ID issued since is handed out.
    pub fn take_mark(&mut self) -> Option<u64> {
        std::mem::take(&mut self.mark_dirty).then_some(self.mark)
    }

    pub fn health(&self, now: Now) -> Health {
        let mut probe = self.clone();
        let reference = probe.reference(now);
        Health {
            workshop: self.workshop,
            last_timestamp_ms: EPOCH_UNIX_MS + self.last,
            issued: self.issued,
            clock_regressions: self.regressions,
            lead_ms: self.last.saturating_sub(reference),
            sequence_exhaustions: self.exhaustions,
            high_water_mark_ms: EPOCH_UNIX_MS + self.mark,
        }
    }
}

fn since_epoch(unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(EPOCH_UNIX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::decode;

    const T0: u64 = EPOCH_UNIX_MS + 60_000_000_000;

    fn at(wall: u64, mono: u64) -> Now {
        Now {
            wall_unix_ms: wall,
            mono_ms: mono,
        }
    }

    fn fresh() -> Generator {
        Generator::new(7, None, at(T0, 0), Flaw::None)
    }

    #[test]
    fn ids_carry_time_workshop_sequence_and_type() {
        let mut g = fresh();
        let a = g.next(at(T0, 0), GiftType::Toy).unwrap();
        let b = g.next(at(T0, 0), GiftType::Coal).unwrap();
        let (pa, pb) = (decode(a as i64).unwrap(), decode(b as i64).unwrap());
        assert_eq!(pa.unix_ms(), T0);
        assert_eq!(
            (pa.workshop, pa.sequence, pa.gift_type),
            (7, 0, GiftType::Toy)
        );
        assert_eq!((pb.sequence, pb.gift_type), (1, GiftType::Coal));
        assert!(b > a);
    }

    #[test]
    fn backward_jumps_never_repeat_or_decrease() {
        for jump in [1, 30_000] {
            let mut g = fresh();
            let mut last = 0;
            for i in 0..10_000u64 {
                // The wall clock jumps back mid-millisecond while real time goes on.
                let wall = if i < 5005 {
                    T0 + i / 10
                } else {
                    T0 + i / 10 - jump
                };
                let id = g.next(at(wall, i / 10), GiftType::Toy).unwrap();
                assert!(id > last, "jump {jump}: {id} after {last}");
                last = id;
            }
            assert_eq!(g.health(at(T0, 1000)).clock_regressions, 1);
            // Timestamps follow real (monotonic) time, not the jumped clock.
            let ts = decode(last as i64).unwrap().unix_ms();
            assert!((T0 + 999..=T0 + 1000).contains(&ts), "jump {jump}: {ts}");
        }
    }

    #[test]
    fn a_stalled_or_slow_clock_is_carried_at_real_speed() {
        let mut g = fresh();
        for mono in 0..100 {
            g.next(at(T0, mono), GiftType::Toy).unwrap();
        }
        let id = g.next(at(T0, 100), GiftType::Toy).unwrap();
        assert_eq!(decode(id as i64).unwrap().unix_ms(), T0 + 100);
        assert_eq!(g.health(at(T0, 100)).clock_regressions, 0);
    }

    #[test]
    fn exhaustion_borrows_the_next_millisecond_without_wasting_a_slot() {
        let mut g = fresh();
        let ids: Vec<u64> = (0..3 * SEQUENCES)
            .map(|_| g.next(at(T0, 0), GiftType::Toy).unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[1] > w[0]));
        let last = decode(*ids.last().unwrap() as i64).unwrap();
        assert_eq!(
            (last.unix_ms(), last.sequence),
            (T0 + 2, 4095),
            "every slot used"
        );
        assert_eq!(g.health(at(T0, 0)).sequence_exhaustions, 2);
        assert_eq!(g.health(at(T0, 0)).lead_ms, 2);
    }

    #[test]
    fn the_lead_is_bounded_and_refusal_says_when_to_retry() {
        let mut g = fresh();
        let capacity = (MAX_LEAD_MS + 1) * SEQUENCES;
        for _ in 0..capacity {
            g.next(at(T0, 0), GiftType::Toy).unwrap();
        }
        assert_eq!(
            g.next(at(T0, 0), GiftType::Toy),
            Err(Exhausted::Lead { retry_in_ms: 1 })
        );
        assert!(g.next(at(T0 + 1, 1), GiftType::Toy).is_ok());
        let batch = g.next_batch(at(T0 + 1, 1), 5000, GiftType::Coal);
        assert!(batch.is_err());
        assert!(
            g.next(at(T0 + 2, 2), GiftType::Toy).is_ok(),
            "a refused batch takes nothing"
        );
    }

    #[test]
    fn the_mark_moves_once_per_lease_and_a_restart_starts_above_it() {
        let mut g = fresh();
        g.next(at(T0, 0), GiftType::Toy).unwrap();
        let mark = g.take_mark().expect("first id moves the mark");
        assert_eq!(mark, T0 - EPOCH_UNIX_MS + LEASE_MS);
        for ms in 1..LEASE_MS {
            g.next(at(T0 + ms, ms), GiftType::Toy).unwrap();
            assert_eq!(g.take_mark(), None, "no write within the lease");
        }
        let before = g.next(at(T0 + 500, 500), GiftType::Toy).unwrap();
        // Restart with the clock set back by a minute.
        let mut r = Generator::new(7, Some(mark), at(T0 - 60_000, 0), Flaw::None);
        let after = r.next(at(T0 - 60_000, 0), GiftType::Toy).unwrap();
        assert!(after > before);
        assert_eq!(
            decode(after as i64).unwrap().unix_ms(),
            EPOCH_UNIX_MS + mark + 1
        );
    }

    #[test]
    fn restarts_do_not_add_up_lead() {
        let mut g = fresh();
        let (mut real, mut mono) = (0, 0);
        let mut mark = None;
        for restart in 0..10 {
            for _ in 0..300 {
                real += 1;
                mono += 1;
                let id = g.next(at(T0 + real, mono), GiftType::Toy).unwrap();
                let ahead = decode(id as i64).unwrap().unix_ms() - (T0 + real);
                assert!(ahead <= LEASE_MS + 1, "restart {restart}: {ahead} ms ahead");
                mark = g.take_mark().or(mark);
            }
            g = Generator::new(7, mark, at(T0 + real, 0), Flaw::None);
            mono = 0;
        }
    }

    #[test]
    fn the_flawed_generators_fail_as_they_should() {
        let mut g = Generator::new(1, None, at(T0, 0), Flaw::IgnoreClockRegressions);
        let a = g.next(at(T0, 0), GiftType::Toy).unwrap();
        let b = g.next(at(T0 - 5, 1), GiftType::Toy).unwrap();
        assert!(b < a, "follows the clock back");
        let mut g = Generator::new(1, None, at(T0, 0), Flaw::ForgetHighWaterMark);
        let a = g.next(at(T0, 0), GiftType::Toy).unwrap();
        assert_eq!(g.take_mark(), None);
        let mut r = Generator::new(1, Some(u64::MAX), at(T0, 0), Flaw::ForgetHighWaterMark);
        assert_eq!(
            r.next(at(T0, 0), GiftType::Toy).unwrap(),
            a,
            "repeats itself"
        );
    }

    #[test]
    fn issue_after_sorts_later_ids_above_another_workshop_s_whose_clock_ran_ahead() {
        // Workshop 3's clock ran 10 s ahead of ours; ours takes over from it.
        let mut theirs = Generator::new(3, None, at(T0 + 10_000, 0), Flaw::None);
        let high = theirs.next(at(T0 + 10_000, 0), GiftType::Toy).unwrap();
        let mut ours = fresh();
        let before = ours.next(at(T0, 0), GiftType::Toy).unwrap();
        assert!(before < high, "without a floor ours sort first");
        ours.issue_after(at(T0, 1), high);
        let mut last = high;
        for i in 0..20_000u64 {
            // A thousand IDs a millisecond go on from the floor at real speed, unrefused.
            let id = ours.next(at(T0 + 1 + i / 1_000, 2 + i / 1_000), GiftType::Toy);
            let id = id.unwrap();
            assert!(id > last, "ID {i} does not sort after the one before");
            last = id;
        }
        // A floor below what was issued changes nothing.
        ours.issue_after(at(T0 + 5, 6), before);
        assert!(ours.next(at(T0 + 5, 6), GiftType::Toy).unwrap() > last);
        // Its own latest ID as the floor keeps the rest of its millisecond usable.
        let mut own = fresh();
        let a = own.next(at(T0, 0), GiftType::Toy).unwrap();
        own.issue_after(at(T0, 0), a);
        let b = own.next(at(T0, 0), GiftType::Toy).unwrap();
        let (pa, pb) = (decode(a as i64).unwrap(), decode(b as i64).unwrap());
        assert_eq!((pb.timestamp, pb.sequence), (pa.timestamp, 1));
    }
}
