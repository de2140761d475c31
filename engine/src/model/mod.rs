//! The Engine API's request and response types. A later API server
//! deserializes request bodies straight into them and serializes results
//! straight back; `berth inspect` prints the same JSON.

pub mod container;
pub mod event;
pub mod exec;
pub mod image;
pub mod network;
pub mod stats;
pub mod volume;

pub use container::*;
pub use event::*;
pub use exec::*;
pub use image::*;
pub use network::*;
pub use stats::*;
pub use volume::*;
