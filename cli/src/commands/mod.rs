pub mod build;
mod change;
mod format;
pub mod images;
pub mod parse;
pub mod registry;
pub mod run;
mod transfer;
pub mod volume;
