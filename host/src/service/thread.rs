//! A thread of its own for each running service (and, for the frontend's public listener, a
//! helper for its busy connections, see [`crate::net::listener::Spill`]).
//!
//! A service's listener, its first connections and the task that drives its instance all run
//! on one single-threaded tokio runtime on a dedicated thread. A request then goes from the
//! socket through hyper into the instance and back without ever waking another thread: the
//! job queue, the reply channel and the response body are all handed over within the thread.
//! On the shared multi-threaded runtime every such hand-over could land on the other worker
//! and cost a futex wake-up and a context switch, several times per request; measured with
//! the `hello` component that was about half the host's throughput (see eval/bench.md).
//!
//! Services still run in parallel with each other (one thread each), and blocking file I/O of
//! WASI goes to tokio's blocking pool as before. Dropping a [`ServiceThread`] stops its
//! runtime, which drops every task still on it.

use std::future::Future;
use std::io;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct ServiceThread {
    handle: Handle,
    /// Dropping this ends the thread's `block_on`, and with it the runtime and its tasks.
    _stop: oneshot::Sender<()>,
}

impl ServiceThread {
    /// Start a thread named after the service, running an empty single-threaded runtime.
    pub fn start(name: &str) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name(format!("svc-{name}")).spawn(move || {
            // Spawned tasks only run while the thread is inside `block_on`.
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
        Ok(Self { handle, _stop: stop })
    }

    /// Where to spawn onto this thread from elsewhere.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Run `task` on this service's thread.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}
