//! The tether agent, built static (see build.rs), for the daemon to place
//! in `<root>/tether/agent/`.

/// The agent's executable.
pub const AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-tether"));
/// Names this build of the agent (a hash and the length of [`AGENT`]).
pub const AGENT_ID: &str = include_str!(concat!(env!("OUT_DIR"), "/berth-tether.id"));

#[cfg(test)]
mod tests {
    #[test]
    fn the_agent_is_a_small_static_executable() {
        let elf = super::AGENT;
        assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF executable");
        let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
        let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
        // A dynamic executable names its loader in a PT_INTERP (3) program header.
        let (offset, size, count) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
        let types: Vec<u32> =
            (0..count).map(|i| u32::from_le_bytes(elf[offset + i * size..][..4].try_into().unwrap())).collect();
        assert!(!types.is_empty() && !types.contains(&3), "the agent must not need a dynamic loader: {types:?}");
        assert!(elf.len() < 2 << 20, "{} bytes", elf.len());
    }
}
