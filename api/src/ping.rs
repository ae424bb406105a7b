//! A replica's `GET /ping` answer (its `data`), typed: the order service writes it, the host's
//! metrics scrape and anything else that asks a replica where it stands read it, through this
//! one definition instead of field names spelt in each.

use serde::{Deserialize, Serialize};

/// What a replica believes it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaRole {
    #[serde(rename = "follower")]
    Follower,
    #[serde(rename = "candidate")]
    Candidate,
    /// A leader taking orders.
    #[serde(rename = "leader")]
    Leader,
    /// A leader whose last replication failed: it renews with a new epoch before numbering
    /// again.
    #[serde(rename = "leader (renewing)")]
    Renewing,
}

/// `GET /ping` at a replica, once it has caught up with its peers (before that it answers 503).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaPing {
    pub id: u32,
    /// The leader it follows (itself when it leads), if it knows one.
    pub leader: Option<u32>,
    /// The epoch it has promised.
    pub epoch: u64,
    /// Index of its log's last record (epoch records included); -1 for an empty log.
    pub last: i64,
    /// Number of its log's last order; -1 before the first.
    pub last_order: i64,
    pub synced: bool,
    pub role: ReplicaRole,
    /// The seed document's `?message=Ping` gets its answer here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_the_one_replicas_have_always_written() {
        let ping = ReplicaPing { id: 2, leader: Some(3), epoch: 7, last: 12, last_order: 9, synced: true, role: ReplicaRole::Renewing, message: None };
        let v = serde_json::to_value(&ping).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": 2, "leader": 3, "epoch": 7, "last": 12, "last_order": 9, "synced": true, "role": "leader (renewing)"})
        );
        assert_eq!(serde_json::from_value::<ReplicaPing>(v).unwrap(), ping);
        let seed: ReplicaPing = serde_json::from_value(serde_json::json!({
            "id": 1, "leader": null, "epoch": 0, "last": -1, "last_order": -1, "synced": true, "role": "follower",
            "message": "Order service is responsive"
        }))
        .unwrap();
        assert_eq!((seed.leader, seed.role, seed.message.as_deref()), (None, ReplicaRole::Follower, Some("Order service is responsive")));
    }
}
