//! berth-builder: a Dockerfile's AST lowered into stages and steps, each
//! step keyed by its content for the build cache, stages scheduled in
//! dependency order with independent ones in parallel, RUN steps run by
//! `berth-runner` and layers committed through `berth-store`.

mod build;
mod chmod;
pub mod context;
mod copy;
mod error;
mod export;
mod fetch;
mod gofmt;
pub mod ignore;
mod key;
mod lower;
mod meta;
pub mod plan;
pub mod progress;
mod remote;
mod request;
mod run;
mod state;
pub mod vars;

pub use build::{build, BuildResult};
pub use error::{Error, Result};
pub use progress::{BuildEvent, BuildObserver, Progress, Unobserved};
pub use remote::{BuiltStep, CacheImport};
pub use request::{
    BuildNetwork, BuildRequest, ImageSource, JoinedStep, Output, SecretSource, StepNetwork,
};
