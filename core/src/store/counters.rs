//! The follow-ups a write creates, counted on its thread while it runs
//! (`calling::follow_up` is deep inside the write's closure, which may be
//! tried more than once) and added to the store's count once it commits.

use std::cell::Cell;

thread_local! {
    static FOLLOW_UPS: Cell<u64> = const { Cell::new(0) };
}

/// A try of a write's closure begins: what an earlier try made was rolled back.
pub(crate) fn start_try() {
    FOLLOW_UPS.with(|c| c.set(0));
}

/// The current try created a follow-up attempt.
pub(crate) fn follow_up_created() {
    FOLLOW_UPS.with(|c| c.set(c.get() + 1));
}

/// How many the last try on this thread created.
pub(crate) fn follow_ups_of_try() -> u64 {
    FOLLOW_UPS.with(|c| c.replace(0))
}
