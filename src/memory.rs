//! The process's allocator: mimalloc instead of glibc's.
//!
//! Loading a city's grids reads 100 000 rows, decodes as many rings and builds index
//! buffers of hundreds of megabytes, and the service answers thousands of small
//! requests a second from several threads. Under glibc a quarter of the load went to
//! `malloc`/`free` and the kernel zeroing freshly mapped pages. Set here rather than in
//! `main.rs` so that benches and tests measure the allocator the service runs.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits` in mimalloc.h (the sixth `mi_option_e`, in v2 and v3);
/// libmimalloc-sys names no constant for it.
const PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// Makes freed memory go back to the kernel with `MADV_FREE` (taken only when the
/// machine needs it) instead of being decommitted. Reloading the grids after an
/// activation then reuses the pages of the previous load instead of faulting in and
/// zeroing a gigabyte again: in `examples`-style repeated loads of 100 000 grids the
/// index build went from 3.3 s to 2.5 s. The price is a resident size that stays at its
/// peak until the kernel reclaims it. Call once at start-up.
pub fn keep_freed_pages_for_reuse() {
    // SAFETY: sets a process-wide allocator option; mimalloc reads options atomically
    // and the value is one the header documents ("0 to use memory reset on a purge").
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DECOMMITS, 0) }
}
