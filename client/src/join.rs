//! Running many futures together inside the calling task. The striped I/O
//! of a caller's registered buffer uses it instead of spawned tasks: its
//! RPCs may then borrow the caller's buffer, and dropping the call drops
//! them (and withdraws their exposures) with it.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Polls every future of `futs`, at most `window` at once, until all are
/// done; their outputs, in the order they finished.
pub(crate) async fn run_all<F: Future>(futs: impl IntoIterator<Item = F>, window: usize) -> Vec<F::Output> {
    let mut waiting = futs.into_iter();
    let mut active: Vec<Pin<Box<F>>> = Vec::new();
    let mut out = Vec::new();
    let window = window.max(1);
    std::future::poll_fn(|cx| {
        loop {
            active.extend(waiting.by_ref().take(window - active.len()).map(Box::pin));
            let before = active.len();
            let mut i = 0;
            while i < active.len() {
                match active[i].as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        out.push(v);
                        // Order of the rest does not matter: each is polled every round.
                        drop(active.swap_remove(i));
                    }
                    Poll::Pending => i += 1,
                }
            }
            if active.is_empty() {
                return Poll::Ready(());
            }
            if active.len() == before {
                return Poll::Pending;
            }
            // Some finished: start the next ones and poll them too.
        }
    })
    .await;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn every_future_runs_once_and_the_window_holds() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let futs = (0..50u64).map(|i| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Finish in an order other than the start order.
                for _ in 0..(i % 7) {
                    tokio::task::yield_now().await;
                }
                running.fetch_sub(1, Ordering::SeqCst);
                i
            }
        });
        let mut got = run_all(futs, 8).await;
        assert!(most.load(Ordering::SeqCst) <= 8, "{} ran at once", most.load(Ordering::SeqCst));
        assert!(most.load(Ordering::SeqCst) > 1, "nothing ran concurrently");
        got.sort();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn nothing_to_run_is_done_at_once() {
        let none: Vec<std::future::Ready<u8>> = Vec::new();
        assert!(run_all(none, 4).await.is_empty());
    }
}
