//! The tokio runtime a PostgreSQL connection blocks on, whether or not the caller is
//! itself inside a tokio runtime.
//!
//! The [`Connection`](super::Connection) trait is synchronous, so every PostgreSQL call
//! waits for its future. Outside any runtime (the `ferry` binary, a plain program) the
//! connection owns a current-thread runtime and `block_on`s it, as fast as it gets: the
//! socket is read on the calling thread. Inside a runtime (an application's
//! `#[tokio::main]`, a web service) tokio refuses a nested `block_on`, so a connection
//! opened there owns a runtime with one worker thread of its own instead: the driver's
//! connection task runs on that worker, and the calling thread waits for the future
//! without entering a second runtime ([`wait`]). The application's runtime is not
//! needed for anything, so this works on a current-thread runtime as on a
//! multi-threaded one; the calling thread is blocked while Ferry works, as with any
//! blocking call (a request handler should use `spawn_blocking`).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use tokio::runtime::{Handle, Runtime};

/// A connection's own runtime; see the module documentation.
pub struct IoRuntime {
    /// `None` only while dropped.
    runtime: Option<Runtime>,
    /// Whether the runtime has a worker thread of its own (made inside another runtime).
    own_thread: bool,
}

impl IoRuntime {
    /// A runtime fit for the calling context: current-thread outside any runtime, one
    /// worker thread of its own inside one.
    pub fn new() -> std::io::Result<IoRuntime> {
        let own_thread = Handle::try_current().is_ok();
        let runtime = if own_thread {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("ferry-postgres-io")
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        };
        Ok(IoRuntime {
            runtime: Some(runtime),
            own_thread,
        })
    }

    fn runtime(&self) -> &Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives until dropped")
    }

    /// Runs `future` to completion on this runtime, blocking the calling thread.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let Ok(caller) = Handle::try_current() else {
            return self.runtime().block_on(future);
        };
        if !self.own_thread && caller.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            // Opened outside a runtime, used inside a multi-threaded one: the
            // connection task runs only while this runtime is blocked on, which
            // tokio allows on a worker that gives up its tasks first.
            return tokio::task::block_in_place(|| self.runtime().block_on(future));
        }
        // Inside the application's runtime. The future's timers and spawned tasks
        // belong to this runtime (entered), and the future itself is polled here.
        let _entered = self.runtime().enter();
        wait(future)
    }

    /// Spawns a task on this runtime.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(future)
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            if Handle::try_current().is_ok() {
                // tokio refuses to wait for a runtime's threads inside another runtime;
                // the connection task has ended already (the connection waits for it).
                runtime.shutdown_background();
            }
        }
    }
}

/// Wakes the waiting thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on the calling thread, parking it between wake-ups: no runtime of
/// its own, so it may run inside any runtime's thread.
fn wait<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn sleep_then(value: u32) -> u32 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        value
    }

    #[test]
    fn blocks_outside_a_runtime() {
        let io = IoRuntime::new().unwrap();
        assert!(!io.own_thread);
        assert_eq!(io.block_on(sleep_then(7)), 7);
    }

    #[test]
    fn blocks_inside_a_current_thread_runtime() {
        let app = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = app.block_on(async {
            let io = IoRuntime::new().unwrap();
            assert!(io.own_thread);
            // A task spawned on Ferry's runtime progresses while the caller waits.
            let task = io.spawn(sleep_then(3));
            let a = io.block_on(sleep_then(4));
            let b = io.block_on(task).unwrap();
            a + b
        });
        assert_eq!(got, 7);
    }

    #[test]
    fn a_runtime_made_outside_is_used_inside_a_multi_threaded_one() {
        let io = IoRuntime::new().unwrap();
        let app = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let got = app.block_on(async { io.block_on(sleep_then(5)) });
        assert_eq!(got, 5);
    }
}
