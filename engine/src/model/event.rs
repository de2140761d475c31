//! Events as the Engine API spells them (`GET /events`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One change of an object: docker's `events.Message`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// "container", "image" or "volume".
    #[serde(rename = "Type")]
    pub kind: String,
    /// "create", "start", "die", "tag", ...
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    /// Seconds since the epoch, and the same in nanoseconds.
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    /// The old API's fields: the action, the ID and (for a container) its image.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub from: String,
}
