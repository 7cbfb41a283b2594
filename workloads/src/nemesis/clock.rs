//! Wall-clock faults, as the nemesis plans them: which change a clock step makes (a jump or
//! a drift), drawn from the seeded RNG. The engine carries them out through libfaketime
//! (`engine::faketime`), as it carries out partitions planned in [`super::partition`].

use rand::rngs::StdRng;
use rand::Rng;

/// What one clock step does to one node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockChange {
    /// Jump by this many milliseconds (negative: backwards).
    Bump(i64),
    /// Run at this speed relative to real time: 0 stalls, 0.5 is half speed, 2 double.
    Drift(f64),
}

impl ClockChange {
    /// Half of the changes are jumps of ±2^k ms for k uniform in 0..=15 (1 ms to 32 s), the
    /// others drift at one of a few speeds, stalling included.
    pub fn random(rng: &mut StdRng) -> ClockChange {
        if rng.gen_bool(0.5) {
            let magnitude = 1i64 << rng.gen_range(0..=15);
            let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
            ClockChange::Bump(sign * magnitude)
        } else {
            const SPEEDS: [f64; 4] = [0.0, 0.5, 1.5, 2.0];
            ClockChange::Drift(SPEEDS[rng.gen_range(0..SPEEDS.len())])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn random_changes_cover_small_and_large_jumps_both_ways() {
        let mut rng = StdRng::seed_from_u64(5);
        let bumps: Vec<i64> = (0..2000)
            .filter_map(|_| match ClockChange::random(&mut rng) {
                ClockChange::Bump(ms) => Some(ms),
                ClockChange::Drift(_) => None,
            })
            .collect();
        assert!(bumps.contains(&1) || bumps.contains(&-1));
        assert!(bumps.iter().any(|b| *b <= -16_384));
        assert!(bumps.iter().any(|b| *b >= 16_384));
    }
}
