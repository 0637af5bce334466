//! The async boundary. DataFusion, which runs the ingest selection, is async;
//! the rest of the library computes synchronously. Async callers (the CLI,
//! `serve`) await the `*_async` functions on their own runtime; the
//! synchronous functions (`score::run`, `LogTable::select`, …) are thin
//! wrappers that drive those on one process-wide runtime built on first use,
//! so no call builds a runtime of its own or spawns threads again.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::error::{Error, Result};

static SHARED: OnceLock<Runtime> = OnceLock::new();

/// The process-wide runtime, built on first use. Its worker count follows
/// rayon's (`RAYON_NUM_THREADS`), so one knob sizes all of trustmesh's threads.
/// The CLI runs its jobs on this one too, so a process never holds two.
pub fn shared() -> Result<&'static Runtime> {
    if let Some(rt) = SHARED.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(rayon::current_num_threads().max(1))
        .thread_name("trustmesh-async")
        // Sockets and timers: `serve` runs its node on this runtime too.
        .enable_all()
        .build()?;
    // Two first callers may race; the loser's runtime is dropped unused.
    Ok(SHARED.get_or_init(|| rt))
}

/// Runs `fut` to completion on the shared runtime, for callers without one.
///
/// Inside a runtime this refuses instead of blocking: tokio panics when a
/// runtime is entered from within another, and blocking a worker thread would
/// stall the caller's other tasks. Such callers await the `*_async` function.
pub fn block_on<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::BlockingInAsync);
    }
    shared()?.block_on(fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_runtime_and_a_clear_refusal_inside_it() {
        assert_eq!(block_on(async { Ok(7) }).unwrap(), 7);
        let first: *const Runtime = shared().unwrap();
        assert!(std::ptr::eq(first, shared().unwrap()), "built once");
        let nested = shared()
            .unwrap()
            .block_on(async { block_on(async { Ok(()) }) });
        let e = nested.unwrap_err();
        assert!(matches!(e, Error::BlockingInAsync), "{e}");
        assert!(e.to_string().contains("_async"), "{e}");
    }
}
