//! Pauses inside long computations, so a caller on a thread that must stay responsive (the
//! page's CPU runs share the browser's one thread with everything else) can stop between
//! pieces of work and resume later.
//!
//! The long computations (forward and backward passes, a training step) are written once, as
//! `async` code that awaits [`pause`] between pieces: after a layer, an expert, a task's
//! backward pass. Nothing else is awaited, so they need no executor. [`finish`] runs such a
//! computation to the end at once (what every synchronous entry point does: `Mlp::gradients`,
//! `Trainer::step`, …); [`drive`] runs it until it is done or `deadline()` says time is up at a
//! pause, and the caller keeps the pinned future to resume it. Both execute the same code in
//! the same order, so a computation cut into many pieces gives exactly the numbers of one that
//! ran through.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A point where a computation may be cut: pending once, then ready.
#[derive(Debug, Default)]
pub struct Pause(bool);

/// Await this between two pieces of a long computation.
pub fn pause() -> Pause {
    Pause(false)
}

impl Future for Pause {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// Run a computation whose only awaits are [`pause`]s to its end.
pub fn finish<F: Future>(fut: F) -> F::Output {
    drive(std::pin::pin!(fut), &mut || false).expect("with no deadline a computation runs to its end")
}

/// Run a computation (whose only awaits are [`pause`]s) until it ends — `Some(output)` — or,
/// at a pause, `deadline()` returns true: `None`, and the same future resumes where it stopped
/// when driven again. `deadline` is asked at every pause, never before the first piece (each
/// call makes progress).
pub fn drive<F: Future + ?Sized>(mut fut: Pin<&mut F>, deadline: &mut dyn FnMut() -> bool) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        if deadline() {
            return None;
        }
    }
}

/// A computation kept between calls (owned, so it can wait inside the struct that runs it).
pub type Paused<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn count(n: usize, log: &mut Vec<usize>) -> usize {
        for i in 0..n {
            log.push(i);
            pause().await;
        }
        n
    }

    #[test]
    fn drive_stops_at_pauses_and_resumes_where_it_stopped() {
        let mut log = Vec::new();
        let mut fut = Box::pin(count(5, &mut log));
        let mut asked = 0;
        // A deadline that has always passed: one piece per call.
        let mut calls = 0;
        let out = loop {
            calls += 1;
            if let Some(v) = drive(fut.as_mut(), &mut || {
                asked += 1;
                true
            }) {
                break v;
            }
        };
        drop(fut);
        assert_eq!(out, 5);
        assert_eq!(calls, 6, "five pauses, then the end");
        assert_eq!(asked, 5);
        assert_eq!(log, vec![0, 1, 2, 3, 4], "every piece ran once, in order");
        let mut again = Vec::new();
        assert_eq!(finish(count(3, &mut again)), 3);
        assert_eq!(again, vec![0, 1, 2]);
    }
}
