pub mod build;
mod build_view;
pub mod container;
pub mod events;
pub mod images;
pub mod lifecycle;
pub mod network;
pub mod parse;
pub mod registry;
pub mod run;
pub mod service;
mod template;
mod transfer;
pub mod volume;

/// docker's `inspect` of several names: the JSON array of those found, an
/// error line for each of the others, and exit code 1 if any was missing.
pub fn print_inspected<T: serde::Serialize>(
    names: &[String],
    find: impl Fn(&str) -> berth_engine::Result<T>,
) -> anyhow::Result<std::process::ExitCode> {
    let mut out = Vec::new();
    let mut missing = false;
    for n in names {
        match find(n) {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("Error: {e}");
                missing = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if missing {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}
