//! The one seeded pseudo-random generator of the cores: session passwords, the tree's hasher
//! keys and the simulator all draw from it, so a seed replays a run exactly.

/// splitmix64. Passwords drawn from it only need to be unguessable by other clients of a
/// test, not by an attacker who can read server memory; the server seeds it from the clock
/// and its pid.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
