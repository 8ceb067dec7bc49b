//! The `smartnic` binary's memory allocator: a bump arena in `.bss`, falling back to the system
//! allocator when it is full.
//!
//! Why: the plugin is one short process per pod. An ADD makes about a thousand allocations
//! (some 400 KB in all), and musl's allocator, which the static binary links, maps and unmaps
//! pages for them: about fifty `mmap`/`munmap` calls, each unmap a TLB flush (measured with
//! `perf trace -s`). Here an allocation is one atomic add in memory the kernel maps on first
//! touch; freeing gives back only the most recent allocation. The process ends before that
//! matters. A long-running use (`smartnic install --keep-running`) fills the arena once and
//! then runs on the system allocator: the waste is bounded by the arena's size.
//!
//! The only `unsafe` of the crate: `GlobalAlloc` is an unsafe trait, and the arena hands out
//! raw pointers into a static buffer.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::UnsafeCell,
    sync::atomic::{AtomicUsize, Ordering},
};

/// A bump allocator over `N` bytes, then [`System`].
pub struct Arena<const N: usize> {
    buf: UnsafeCell<[u8; N]>,
    /// Offset of the first free byte.
    next: AtomicUsize,
}

// SAFETY: the buffer is only reached through pointers handed out once each, for disjoint
// ranges claimed by compare-and-swap on `next`.
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Arena<N> {
    /// An empty arena (for a `static`).
    pub const fn new() -> Self {
        Self {
            buf: UnsafeCell::new([0; N]),
            next: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.buf.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.base() && p < self.base() + N
    }

    /// Bytes handed out so far (freed tails excluded).
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// Claims `layout` from the arena; null when it does not fit.
    fn claim(&self, layout: Layout) -> *mut u8 {
        let base = self.base();
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + cur).next_multiple_of(layout.align()) - base;
            let Some(end) = start.checked_add(layout.size()).filter(|e| *e <= N) else {
                return std::ptr::null_mut();
            };
            match self
                .next
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => cur = now,
            }
        }
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `claim` returns disjoint, suitably aligned ranges inside the buffer, or null; anything
// not from the arena goes to `System`, which allocated it.
unsafe impl<const N: usize> GlobalAlloc for Arena<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.claim(layout);
        if p.is_null() {
            // SAFETY: the caller's layout contract, passed on.
            unsafe { System.alloc(layout) }
        } else {
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            // The latest allocation goes back; any other stays until the process ends.
            let start = ptr as usize - self.base();
            let _ = self.next.compare_exchange(
                start + layout.size(),
                start,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        } else {
            // SAFETY: not ours, so `System` allocated it with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.owns(ptr) {
            // The latest allocation grows or shrinks in place when the arena has room.
            let start = ptr as usize - self.base();
            let end = start + layout.size();
            if let Some(new_end) = start.checked_add(new_size).filter(|e| *e <= N)
                && self
                    .next
                    .compare_exchange(end, new_end, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return ptr;
            }
            if new_size <= layout.size() {
                return ptr;
            }
        } else {
            // SAFETY: not ours, so `System` allocated it with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` is non-zero and fits `isize` (the caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both ranges are valid for `layout.size()` bytes (new_size is larger) and
            // do not overlap (the new one was claimed after the old one).
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            // SAFETY: `ptr` came from this allocator with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_the_tail_is_reused() {
        let a = Box::new(Arena::<4096>::new());
        // SAFETY (tests): layouts are valid and non-zero; pointers go back with their layout.
        unsafe {
            let p = a.alloc(layout(3, 1));
            let q = a.alloc(layout(8, 8));
            assert!(a.owns(p) && a.owns(q));
            assert_eq!(q as usize % 8, 0);
            assert!(q as usize >= p as usize + 3);
            let used = a.used();
            let r = a.alloc(layout(100, 64));
            assert_eq!(r as usize % 64, 0);
            a.dealloc(r, layout(100, 64));
            assert_eq!(
                a.used(),
                (r as usize) - a.base(),
                "the latest allocation came back"
            );
            assert!(a.used() >= used);
            // Not the latest: stays claimed.
            a.dealloc(p, layout(3, 1));
            assert!(a.used() > 0);
        }
    }

    #[test]
    fn the_latest_allocation_grows_in_place_and_others_move() {
        let a = Box::new(Arena::<4096>::new());
        // SAFETY (tests): as above; written bytes stay inside each allocation.
        unsafe {
            let p = a.alloc(layout(16, 8));
            p.write_bytes(7, 16);
            let p2 = a.realloc(p, layout(16, 8), 64);
            assert_eq!(p2, p, "the tail grows where it is");
            let q = a.alloc(layout(8, 8));
            let p3 = a.realloc(p2, layout(64, 8), 128);
            assert_ne!(p3, p2, "not the tail any more: moved");
            assert_eq!(std::slice::from_raw_parts(p3, 16), &[7; 16]);
            a.dealloc(q, layout(8, 8));
        }
    }

    #[test]
    fn a_full_arena_falls_back_to_the_system_allocator() {
        let a = Box::new(Arena::<64>::new());
        // SAFETY (tests): as above.
        unsafe {
            let p = a.alloc(layout(48, 8));
            assert!(a.owns(p));
            let big = a.alloc(layout(1024, 8));
            assert!(!big.is_null() && !a.owns(big));
            big.write_bytes(1, 1024);
            let bigger = a.realloc(big, layout(1024, 8), 4096);
            assert!(!a.owns(bigger));
            a.dealloc(bigger, layout(4096, 8));
            // The arena's tail cannot grow past its end: the data moves to the system.
            let moved = a.realloc(p, layout(48, 8), 256);
            assert!(!a.owns(moved));
            a.dealloc(moved, layout(256, 8));
        }
    }
}
