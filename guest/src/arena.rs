//! The component's allocator: a bump arena in front of the standard one.
//!
//! A reconcile parses a few KB of JSON into `serde_json::Value`s and builds the response: some
//! 600 small, short-lived allocations, about 60 KB in all (counted natively). Compiled to wasm, the standard allocator
//! (dlmalloc) costs about a quarter of a call, and every `memory.grow` it makes in a fresh
//! instance is a call into the host (BENCHMARKS.md, "Guest call"). Here an allocation is a
//! pointer bump in a fixed arena (in the module's zero-initialised data: no `memory.grow`), a
//! free only counts, and once no arena block is live any more (after the host's post-return has
//! freed the response) the whole arena is free again. So an instance that is reused for call
//! after call, as the embedding hosts do, starts every call with an empty arena. What does not
//! fit goes to the standard allocator: a call never fails for want of arena space, and a block
//! that is never freed costs speed, not memory.
#![allow(unsafe_code)] // a global allocator is unsafe by definition

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};

/// The component's arena: more than ten times what a reconcile of the benchmarks allocates.
#[cfg(all(target_arch = "wasm32", feature = "component"))]
#[global_allocator]
static ARENA: Arena<{ 1 << 20 }> = Arena::new();

/// A bump arena of `N` bytes in front of the standard allocator.
pub struct Arena<const N: usize> {
    bytes: Bytes<N>,
    /// Offset of the first free byte.
    next: Cell<usize>,
    /// Arena blocks allocated and not yet freed.
    live: Cell<usize>,
}

#[repr(C, align(16))]
struct Bytes<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the component runs on one thread (wasm32-unknown-unknown has no threads); the tests
// use each arena from one thread only.
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Arena<N> {
    /// An empty arena.
    pub const fn new() -> Self {
        Self {
            bytes: Bytes(UnsafeCell::new([0; N])),
            next: Cell::new(0),
            live: Cell::new(0),
        }
    }

    fn base(&self) -> usize {
        self.bytes.0.get() as usize
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        (self.base()..self.base() + N).contains(&(ptr as usize))
    }

    /// A block from the arena, or `None` when it does not fit.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let start = (self.base() + self.next.get()).next_multiple_of(layout.align());
        let end = start.checked_add(layout.size())?;
        if end > self.base() + N {
            return None;
        }
        self.next.set(end - self.base());
        self.live.set(self.live.get() + 1);
        Some(start as *mut u8)
    }
}

// SAFETY: arena blocks are disjoint, aligned as asked and inside the arena, and the arena is
// handed out again only once every block was freed. Everything else is the standard allocator's.
unsafe impl<const N: usize> GlobalAlloc for Arena<N> {
    #[inline(never)] // one copy, not one per allocation site
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: the caller's contract, forwarded.
            None => unsafe { System.alloc(layout) },
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.contains(ptr) {
            // SAFETY: not an arena block, so one of the standard allocator's.
            return unsafe { System.dealloc(ptr, layout) };
        }
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.next.set(0);
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.contains(ptr) {
            // SAFETY: not an arena block, so one of the standard allocator's.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // The newest block grows or shrinks in place (a `Vec` or `String` being filled).
        let offset = ptr as usize - self.base();
        if offset + layout.size() == self.next.get() && offset + new_size <= N {
            self.next.set(offset + new_size);
            return ptr;
        }
        // SAFETY: the caller guarantees that `new_size` with this alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `ptr` is valid for `layout.size()` bytes and the new block for `new_size`;
        // they are distinct blocks.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_disjoint_and_the_arena_is_reused_once_all_are_freed() {
        static ARENA: Arena<256> = Arena::new();
        let (a8, a16) = (
            Layout::from_size_align(24, 8).unwrap(),
            Layout::from_size_align(40, 16).unwrap(),
        );
        // SAFETY: valid layouts; every block is freed with its own layout.
        unsafe {
            let a = ARENA.alloc(a8);
            let b = ARENA.alloc(a16);
            assert!(ARENA.contains(a) && ARENA.contains(b));
            assert_eq!(b as usize % 16, 0);
            assert!(b as usize >= a as usize + 24);
            // The newest block grows in place; an older one moves, keeping its bytes.
            a.write(7);
            assert_eq!(ARENA.realloc(b, a16, 80), b);
            let a2 = ARENA.realloc(a, a8, 48);
            assert_ne!(a2, a);
            assert_eq!(a2.read(), 7);
            ARENA.dealloc(b, Layout::from_size_align(80, 16).unwrap());
            assert_ne!(ARENA.next.get(), 0, "a block is still live");
            ARENA.dealloc(a2, Layout::from_size_align(48, 8).unwrap());
            assert_eq!(ARENA.next.get(), 0);
            assert_eq!(ARENA.alloc(a8), a);
            ARENA.dealloc(a, a8);
        }
    }

    #[test]
    fn what_does_not_fit_goes_to_the_standard_allocator() {
        static ARENA: Arena<64> = Arena::new();
        let big = Layout::from_size_align(100, 8).unwrap();
        let small = Layout::from_size_align(48, 8).unwrap();
        // SAFETY: valid layouts; every block is freed with its own layout.
        unsafe {
            let a = ARENA.alloc(big);
            assert!(!a.is_null() && !ARENA.contains(a));
            let b = ARENA.alloc(small);
            let c = ARENA.alloc(small);
            assert!(ARENA.contains(b) && !ARENA.contains(c));
            // An arena block that outgrows the arena moves out of it.
            let b2 = ARENA.realloc(b, small, 200);
            assert!(!ARENA.contains(b2));
            assert_eq!(ARENA.next.get(), 0, "no arena block is live");
            for (ptr, layout) in [
                (a, big),
                (c, small),
                (b2, Layout::from_size_align(200, 8).unwrap()),
            ] {
                ARENA.dealloc(ptr, layout);
            }
        }
    }
}
