//! The allocator's limits, set first thing in `main`.
//!
//! glibc's malloc hands threads arenas of their own, up to eight per core,
//! and each arena keeps what was freed in it for reuse. HTTP workers, the
//! relay, the job workers and the blocking pool share this process, and a
//! job's large buffers (a transform job's documents, a load job's rows,
//! libpq's result buffers) are allocated on whichever thread runs it: with
//! every arena holding its own high-water mark, resident memory followed
//! the number of threads, not what was in flight (`cargo xtask bench
//! pipeline`: 85–108 MiB of peak RSS with the default, about 72 MiB with
//! two arenas, at the same throughput).
//!
//! A job leaves thousands of small blocks freed among live ones (its rows,
//! a few hundred bytes each); glibc keeps such free pages resident until
//! asked. Once a second a thread asks (`malloc_trim`), so a burst of jobs
//! does not leave the process at its high-water mark (`cargo xtask bench
//! pipeline --history`: about 86 MiB resident between rounds without it).

/// Arenas glibc may create; an operator's `MALLOC_ARENA_MAX` or
/// `GLIBC_TUNABLES` wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    // SAFETY: mallopt only sets a parameter of the allocator, and this runs
    // at the top of `main`, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Other allocators size their arenas themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

/// Starts the thread that hands free heap pages back to the system once a
/// second, for the life of the process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim_periodically() {
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            // SAFETY: malloc_trim only releases memory the allocator holds
            // free; it takes the arenas' own locks.
            unsafe {
                libc::malloc_trim(0);
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no malloc-trim thread: freed memory stays resident until reused");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_periodically() {}
