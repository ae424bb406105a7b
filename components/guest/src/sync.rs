//! The async mutex every component uses: tokio's, which is **fair** (waiters get the lock in
//! the order they asked for it) and needs no tokio runtime (only the `sync` feature).
//!
//! Why not `futures::lock::Mutex`: it lets a task that arrives just as the lock is released take
//! it ahead of tasks already waiting. Under 8 concurrent orders a waiter starved for 3.8 s on
//! the order leader's lock while every holder kept it ~10 ms. FIFO order bounds the wait by
//! the queue ahead of you.

pub use tokio::sync::{Mutex, MutexGuard};
