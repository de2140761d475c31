pub mod build;
pub mod container;
pub mod images;
pub mod parse;
pub mod registry;
pub mod run;
mod transfer;
pub mod volume;
