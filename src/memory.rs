//! The allocator's share of memory per socket (glibc on Linux; elsewhere these do nothing).
//!
//! glibc keeps what the program frees in its heaps, for reuse, and gives back to the system
//! only what lies at the very top of a heap. A burst leaves the middle of the heaps free but
//! resident: a thousand sockets joining one vault at once (each join's presence snapshot, and
//! each member's diff queued to every socket) left 24 MiB of a 66 MiB process free and resident
//! for good; `malloc_trim(0)` gave it back. So a task reads the resident size every
//! second and, once it has grown by [`WORTH_TRIMMING`] since the last trim and stopped
//! growing (the burst is over), returns the free pages; and once a minute in any case, for
//! memory freed without any growth (sockets leaving). Asking glibc how much it holds free
//! (`mallinfo2`) walks every free chunk: measured 5 ms a call on a server with 5000 sockets.
use std::time::Duration;

/// Growth of the resident size since the last trim that is worth a trim once it stops.
pub const WORTH_TRIMMING: u64 = 8 << 20;

/// How often the resident size is read (one small read of `/proc/self/statm`).
const EVERY: Duration = Duration::from_secs(1);

/// Growth between two looks that still counts as having stopped.
const STILL: u64 = 1 << 20;

/// A trim every this many looks, whatever the size did: a minute.
const ANYWAY: u32 = 60;

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

/// This process's resident bytes.
pub fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split(' ').nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The size of a memory page: 4 KiB on x86-64, and up to 64 KiB on some arm64 kernels.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn page_size() -> u64 {
    // SAFETY: `sysconf` only reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn page_size() -> u64 {
    4096
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

/// Decides when to trim, from the resident size at each look.
#[derive(Debug, Default)]
pub struct Trimmer {
    /// Resident bytes right after the last trim.
    floor: u64,
    /// Resident bytes at the previous look.
    last: u64,
    /// Looks since the last trim.
    looks: u32,
}

impl Trimmer {
    /// Whether to trim, given the resident bytes now; after a trim, call [`Trimmer::trimmed`].
    pub fn should_trim(&mut self, resident: u64) -> bool {
        let grown = resident >= self.floor + WORTH_TRIMMING;
        let settled = resident <= self.last + STILL;
        self.last = resident;
        self.looks += 1;
        (grown && settled) || self.looks >= ANYWAY
    }

    pub fn trimmed(&mut self, resident: u64) {
        (self.floor, self.last, self.looks) = (resident, resident, 0);
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
            let Some(before) = resident() else { return };
            if trimmer.should_trim(before) {
                trim();
                let after = resident().unwrap_or(before);
                trimmer.trimmed(after);
                tracing::debug!(
                    before_mib = before >> 20,
                    after_mib = after >> 20,
                    "free heap memory handed back"
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_resident_size_is_the_kernels_vm_rss() {
        let rss_kib = || -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        let before = rss_kib() * 1024;
        let resident = resident().expect("/proc/self/statm reads");
        let after = rss_kib() * 1024;

        let (low, high) = (before.min(after), before.max(after));
        assert!(
            low * 9 / 10 <= resident && resident <= high * 11 / 10,
            "{resident} against VmRSS {before}..{after}"
        );
    }

    #[test]
    fn trims_after_a_growth_stops_and_once_a_minute() {
        let mut t = Trimmer::default();
        t.trimmed(50 * MIB);
        assert!(!t.should_trim(52 * MIB), "little growth");
        assert!(!t.should_trim(70 * MIB), "still growing");
        assert!(
            t.should_trim(70 * MIB + MIB / 2),
            "grew by 20 MiB and stopped"
        );
        t.trimmed(55 * MIB);
        assert!(!t.should_trim(60 * MIB), "5 MiB since the trim");
        assert!(!t.should_trim(60 * MIB), "settled, but only 5 MiB");
        let mut looks = 2;
        while !t.should_trim(60 * MIB) {
            looks += 1;
        }
        assert_eq!(looks + 1, ANYWAY, "a trim once a minute anyway");
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
        let before = resident().unwrap();
        trim();
        let after = resident().unwrap();
        drop(small);
        assert!(
            before.saturating_sub(after) >= 32 * MIB,
            "resident {} MiB before the trim, {} MiB after",
            before / MIB,
            after / MIB
        );
    }
}
