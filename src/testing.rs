//! Deterministic data for the unit tests.

/// Marsaglia's xorshift64 (13, 7, 17): the generator every unit test draws from.
pub(crate) struct XorShift(pub u64);

impl XorShift {
    /// The next 64 bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }

    /// Uniform in `[-0.5, 0.5)`, exact in `f32` (24 random bits).
    pub(crate) fn centered(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}
