//! `berth events`: the event log, printed and followed as docker prints it.

use super::template;
use anyhow::bail;
use berth_engine::events::EventsOptions;
use berth_engine::units::{rfc3339_nano, timestamp};
use berth_engine::Engine;
use clap::Args;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided (type=, event=, container=, image=, volume=, label=)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format the output using the given Go template
    #[arg(long)]
    format: Option<String>,
}

/// `key=value` filters, as docker's `--filter`, grouped by key.
pub fn filters(args: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in args {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        out.entry(k.trim().to_ascii_lowercase())
            .or_default()
            .push(v.trim().to_string());
    }
    Ok(out)
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn events(engine: &Engine, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let now = now_nanos();
    let at = |v: &Option<String>| -> anyhow::Result<Option<i64>> {
        v.as_deref()
            .map(|s| timestamp(s, now).map_err(anyhow::Error::msg))
            .transpose()
    };
    let filters = filters(&args.filter)?;
    for k in filters.keys() {
        if !matches!(
            k.as_str(),
            "type" | "event" | "container" | "image" | "volume" | "label"
        ) {
            bail!("invalid filter '{k}'");
        }
    }
    let opts = EventsOptions {
        since: at(&args.since)?,
        until: at(&args.until)?,
        filters,
    };
    let tpl = match args.format.as_deref() {
        Some("json") => Some(template::Template::parse("{{json .}}")?),
        Some(f) => Some(template::Template::parse(f)?),
        None => None,
    };
    let mut failed = None;
    engine.events(&opts, &mut |e| {
        let line = match &tpl {
            Some(t) => match serde_json::to_value(e) {
                Ok(v) => t.render(&v),
                Err(err) => {
                    failed = Some(anyhow::Error::from(err));
                    return false;
                }
            },
            None => {
                let attrs = e
                    .actor
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "{} {} {} {} ({attrs})",
                    rfc3339_nano(e.time_nano),
                    e.kind,
                    e.action,
                    e.actor.id
                )
            }
        };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) ends the stream.
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(ExitCode::SUCCESS)
}
