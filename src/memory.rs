//! The allocator's share of memory per socket (glibc on Linux; elsewhere these do nothing).
//!
//! glibc keeps what the program frees in its heaps, for reuse, and gives back to the system
//! only what lies at the very top of a heap. A burst leaves the middle of the heaps free but
//! resident: a thousand sockets joining one vault at once (each join's presence snapshot, and
//! each member's diff queued to every socket) left 24 MiB of a 66 MiB process free and resident
//! for good; `malloc_trim(0)` gave it back. So a task looks every few seconds at how much the
//! heaps hold free and, when that grew by more than [`WORTH_TRIMMING`] since it last trimmed,
//! returns the free pages.
use std::time::Duration;

/// Free heap memory that grew by at least this much since the last trim is handed back.
pub const WORTH_TRIMMING: usize = 8 << 20;

/// How often the heaps are looked at: `mallinfo2` walks each arena's bins, a few µs.
const EVERY: Duration = Duration::from_secs(2);

/// Each password hash allocates 19 MiB. glibc serves a block that large with `mmap`, but after
/// the first one is freed it raises its threshold to that size, so later hashes are carved
/// from the per-thread heaps and stay resident: about 100 MiB of idle RSS after a few logins.
/// A fixed threshold keeps such blocks mapped only while in use.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_blocks_to_the_os() {
    // SAFETY: `mallopt` only tunes the allocator; glibc takes its own lock to change it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_blocks_to_the_os() {}

/// Bytes the heaps hold free (resident or already handed back).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_free() -> usize {
    // SAFETY: `mallinfo2` only reads the allocator's statistics, under its own locks.
    unsafe { libc::mallinfo2() }.fordblks
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_free() -> usize {
    0
}

/// Hands every free page of the heaps back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: `malloc_trim` only releases free memory, under the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

/// Decides when free heap memory is worth handing back. Free memory stays counted as free
/// after a trim, so what matters is how much it grew since.
#[derive(Debug, Default)]
pub struct Trimmer {
    /// Free bytes right after the last trim, lowered whenever the heaps reuse some.
    floor: usize,
}

impl Trimmer {
    /// Whether to trim, given the heaps' free bytes now.
    pub fn should_trim(&mut self, free: usize) -> bool {
        self.floor = self.floor.min(free);
        if free < self.floor + WORTH_TRIMMING {
            return false;
        }
        self.floor = free;
        true
    }
}

/// Runs for the life of the process (the allocator is the process's, not one server's).
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut trimmer = Trimmer::default();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let free = heap_free();
            if trimmer.should_trim(free) {
                trim();
                tracing::debug!(free_mib = free >> 20, "free heap memory handed back");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn trims_once_free_memory_grew_enough_and_again_only_after_it_grows_again() {
        let mut t = Trimmer::default();
        assert!(!t.should_trim(3 * MIB), "little free memory");
        assert!(t.should_trim(20 * MIB), "a burst freed 20 MiB");
        assert!(!t.should_trim(20 * MIB), "nothing new since the trim");
        assert!(!t.should_trim(26 * MIB), "6 MiB more is not worth it");
        assert!(!t.should_trim(10 * MIB), "the heaps reused some");
        assert!(t.should_trim(19 * MIB), "9 MiB more than the lowest since");
    }

    /// Resident pages of this process, from `/proc/self/statm`.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn resident_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split(' ').nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_trim_hands_back_memory_freed_in_the_middle_of_a_heap() {
        // 64 MiB in 16 KiB blocks, each followed by a small one that stays: freeing the big
        // ones leaves holes in the middle of the heap, which glibc keeps resident.
        let blocks: Vec<(Vec<u8>, Vec<u8>)> = (0..4096)
            .map(|i| (vec![i as u8 | 1; 16 * 1024], vec![1u8; 64]))
            .collect();
        let (big, small): (Vec<_>, Vec<_>) = blocks.into_iter().unzip();
        drop(big);
        let before = resident_bytes();
        assert!(heap_free() >= 48 * MIB, "the freed blocks are counted free");
        trim();
        let after = resident_bytes();
        drop(small);
        assert!(
            before.saturating_sub(after) >= 32 * MIB,
            "resident {} MiB before the trim, {} MiB after",
            before / MIB,
            after / MIB
        );
    }
}
