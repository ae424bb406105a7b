//! The host's memory allocator: jemalloc, and handing memory freed in bulk back to the system.
//!
//! A served request allocates and frees many small objects on several threads at once (hyper's
//! buffers and heads, wasmtime's resource-table entries and task state, tokio's tasks); glibc's
//! malloc and free were a tenth of a busy service thread. jemalloc's per-thread caches take
//! the same work for less, on every read path (eval/bench.md has the comparison).
//!
//! jemalloc hands freed pages back on its own, after a decay of 10 s. Compiling the components
//! frees tens of MiB at once and the next compile allocates as much again, so without a purge
//! in between the peak RSS of the start is the sum (72 MiB against 60 MiB);
//! [`release_freed_memory`] purges at once.

#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hand the memory that has been freed (e.g. by compiling a component) back to the system now
/// instead of after jemalloc's decay. A failure only delays that, so it is logged, not raised.
pub fn release_freed_memory() {
    if let Err(e) = purge_all_arenas() {
        tracing::warn!(error = %e, "jemalloc purge failed; freed memory returns after its decay");
    }
}

/// jemalloc's `arena.<MALLCTL_ARENAS_ALL>.purge`: every arena's unused pages, at once.
#[cfg(unix)]
fn purge_all_arenas() -> std::io::Result<()> {
    const PURGE_ALL_ARENAS: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a NUL-terminated name of a control that takes and returns nothing (all the
    // pointers null, the length 0), as jemalloc's `mallctl` documents for this control.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL_ARENAS.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    match status {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(not(unix))]
fn purge_all_arenas() -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The control's name and calling convention are right: jemalloc answers a wrong name
    /// with ENOENT and data where it takes none with EPERM, and then nothing is purged.
    #[test]
    fn the_purge_is_accepted() {
        let freed = vec![1u8; 8 << 20];
        drop(std::hint::black_box(freed));
        super::purge_all_arenas().expect("jemalloc takes arena.4096.purge");
    }
}
