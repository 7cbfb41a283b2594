//! The bit layout of a gift ID, and its decoding.
//!
//! ```text
//!  63                        23 22        13 12          1   0
//! ┌────────────────────────────┬────────────┬─────────────┬──────┐
//! │ timestamp: 41 bits, ms     │ workshop   │ sequence    │ type │
//! │ since 2025-01-01T00:00:00Z │ 10 bits    │ 12 bits     │ 1 bit│
//! └────────────────────────────┴────────────┴─────────────┴──────┘
//! ```
//!
//! The specification draws `0 | 41 | 10 | 12 | 1`, 65 bits. Every field keeps its size and
//! the sign bit is shared with the timestamp's top bit instead: it stays 0 for 2^40 ms
//! (34.8 years, until 2059-11-04), and IDs are positive signed 64-bit integers until then.
//! A timestamp at or past 2^40 is refused rather than wrapped. Time is the top field, so
//! IDs sort by creation time (then workshop, sequence, type).

/// 2025-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_UNIX_MS: u64 = 1_735_689_600_000;

pub const TYPE_BITS: u32 = 1;
pub const SEQUENCE_BITS: u32 = 12;
pub const WORKSHOP_BITS: u32 = 10;
pub const TIMESTAMP_BITS: u32 = 41;

pub const SEQUENCE_SHIFT: u32 = TYPE_BITS;
pub const WORKSHOP_SHIFT: u32 = SEQUENCE_SHIFT + SEQUENCE_BITS;
pub const TIMESTAMP_SHIFT: u32 = WORKSHOP_SHIFT + WORKSHOP_BITS;

/// IDs per millisecond per workshop.
pub const SEQUENCES: u64 = 1 << SEQUENCE_BITS;
pub const WORKSHOPS: u64 = 1 << WORKSHOP_BITS;
/// The first timestamp (ms since the epoch) that would set the sign bit.
pub const TIMESTAMP_LIMIT: u64 = 1 << (TIMESTAMP_BITS - 1);

/// Toy or coal: the ID's lowest bit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum GiftType {
    #[default]
    Toy,
    Coal,
}

impl GiftType {
    pub fn bit(self) -> u64 {
        match self {
            GiftType::Toy => 0,
            GiftType::Coal => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GiftType::Toy => "toy",
            GiftType::Coal => "coal",
        }
    }
}

/// A gift ID taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parts {
    /// Milliseconds since [`EPOCH_UNIX_MS`].
    pub timestamp: u64,
    pub workshop: u16,
    pub sequence: u16,
    pub gift_type: GiftType,
}

impl Parts {
    pub fn unix_ms(&self) -> u64 {
        EPOCH_UNIX_MS + self.timestamp
    }
}

/// Why a number is not a gift ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Negative: the sign bit is never set.
    Negative(i64),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Negative(n) => write!(
                f,
                "{n} is not a gift ID: gift IDs are positive 64-bit integers"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Packs the fields; each must be in range (debug-asserted, masked in release).
pub fn encode(timestamp: u64, workshop: u16, sequence: u16, gift_type: GiftType) -> u64 {
    debug_assert!(timestamp < TIMESTAMP_LIMIT);
    debug_assert!(u64::from(workshop) < WORKSHOPS);
    debug_assert!(u64::from(sequence) < SEQUENCES);
    (timestamp << TIMESTAMP_SHIFT)
        | ((u64::from(workshop) & (WORKSHOPS - 1)) << WORKSHOP_SHIFT)
        | ((u64::from(sequence) & (SEQUENCES - 1)) << SEQUENCE_SHIFT)
        | gift_type.bit()
}

/// Takes an ID apart. Every non-negative 64-bit integer decodes; negative ones are not IDs.
pub fn decode(id: i64) -> Result<Parts, DecodeError> {
    if id < 0 {
        return Err(DecodeError::Negative(id));
    }
    let id = id as u64;
    Ok(Parts {
        timestamp: id >> TIMESTAMP_SHIFT,
        workshop: ((id >> WORKSHOP_SHIFT) & (WORKSHOPS - 1)) as u16,
        sequence: ((id >> SEQUENCE_SHIFT) & (SEQUENCES - 1)) as u16,
        gift_type: if id & 1 == 1 {
            GiftType::Coal
        } else {
            GiftType::Toy
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_at_their_extremes() {
        for (t, w, s, g) in [
            (0, 0, 0, GiftType::Toy),
            (TIMESTAMP_LIMIT - 1, 1023, 4095, GiftType::Coal),
            (123_456_789, 7, 42, GiftType::Coal),
        ] {
            let id = encode(t, w, s, g);
            assert!(i64::try_from(id).is_ok(), "fits a signed 64-bit integer");
            let p = decode(id as i64).unwrap();
            assert_eq!(
                (p.timestamp, p.workshop, p.sequence, p.gift_type),
                (t, w, s, g)
            );
        }
        assert_eq!(
            encode(TIMESTAMP_LIMIT - 1, 1023, 4095, GiftType::Coal),
            i64::MAX as u64
        );
        assert!(decode(-1).is_err());
    }

    #[test]
    fn ids_sort_by_time_first() {
        let earlier = encode(1000, 1023, 4095, GiftType::Coal);
        let later = encode(1001, 0, 0, GiftType::Toy);
        assert!(earlier < later);
    }

    #[test]
    fn the_layout_lasts_thirty_years() {
        let years = TIMESTAMP_LIMIT as f64 / (365.25 * 24.0 * 3600.0 * 1000.0);
        assert!(years > 34.8 && years < 34.9, "{years}");
        assert_eq!(EPOCH_UNIX_MS, 1_735_689_600_000, "2025-01-01T00:00:00Z");
    }

    #[test]
    fn worked_example_of_the_readme() {
        // 2026-12-24T18:00:00.123Z, workshop 7, sequence 42, coal.
        let t = 1_798_135_200_123 - EPOCH_UNIX_MS;
        let id = encode(t, 7, 42, GiftType::Coal);
        assert_eq!(id, 523_831_660_756_656_213);
        assert_eq!(decode(id as i64).unwrap().unix_ms(), 1_798_135_200_123);
    }
}
