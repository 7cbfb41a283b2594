//! The elf workshop task queue.
//!
//! Tasks are spread over partitions by a hash of their id; each partition is a Raft group
//! of up to three nodes whose log holds every change to the partition ([`partition::Cmd`]),
//! so a task acknowledged to its producer survives the loss of any minority of its
//! replicas, and so do its leases. [`partition::Partition`] is the replicated state machine
//! (statuses, ready queues by priority, leases, the dead-letter queue, dependencies,
//! cancellation);
//! [`node::QueueNode`] is the Maelstrom node around it: routing any request to the
//! partition's leader, polling with work stealing, heartbeats and health.

pub mod message;
pub mod node;
pub mod partition;
pub mod task;
