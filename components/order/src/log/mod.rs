//! `orders.csv`: the replicated order log, and the in-memory index over it.
//!
//! The file is the truth. It is a header line followed by one line per *record*, with
//! positions (`index`) 0,1,2,… without gaps. A record is either
//! - an **epoch record** (`kind=epoch`): the first thing a new leader writes (Raft's no-op
//!   entry); it carries no order and no number, or
//! - an **order record** (`kind=order`): an order with its number (0,1,2,… contiguous over the
//!   order records alone), toy, quantity, the unit price as the catalog spelt it when the
//!   leader admitted the order, and the idempotency key.
//!
//! ```text
//! index,epoch,kind,number,name,quantity,price,key
//! 0,1,epoch,,,,,
//! 1,1,order,0,Tux,2,25.99,k-7f3a
//! ```
//!
//! The file only ever changes in two ways, both durable before anyone is told: whole lines
//! appended and fsync'd ([`durable::append`]), or a suffix cut off ([`durable::truncate`]) when
//! a replica learns that its tail was never committed. Nothing is ever rewritten in place.
//!
//! Every replica serialises a record to exactly the same bytes, so replicas that agree on the
//! records end with byte-identical files (the tests compare them).
//!
//! The index ([`Log`]) is a cache, bounded whatever the log's length: the byte offset of every
//! 64th line (a record is read from the file by offset), the positions of the epoch records
//! (order numbers are dense between them, so number ↔ index is arithmetic), the last 1024
//! records parsed, key hash → order number for the newest keys with the older ones sealed on disk
//! ([`crate::keys`]), and the per-toy sum of the order records at or after a chosen order
//! number (the stock the catalog has not applied yet, see `stock.rs`). Opening scans the file
//! once in chunks (validating every line, keeping nothing but that index). Before it is used
//! under the directory lock, [`Log::refresh`] compares the file length with what this instance
//! last read or wrote, and re-reads the file only if another instance changed it. Appends never
//! re-read.

//!
//! The parts: [`record`], the line format (what one record is and its exact bytes);
//! [`damage`], reading a whole file and naming what is wrong with a damaged one; [`index`],
//! the bounded index ([`Log`]) and every read and write of the file through it.

mod damage;
mod index;
mod record;

pub use damage::{parse, Corrupt, Damage, OldFormat, Parsed};
pub use index::{Log, Merge, Position};
pub use record::{valid_price, valid_text, Anchor, Record, Order, FILE, HEADER, OLD_HEADER};

#[cfg(test)]
mod tests;
