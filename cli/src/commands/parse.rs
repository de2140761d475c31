//! `berth parse`: print a Dockerfile as berth reads it.

use anyhow::Context;
use berth_grammar::{parse_syntax, Dockerfile, ParseError};
use clap::Args;
use std::io::Read;
use std::process::ExitCode;

#[derive(Args)]
pub struct ParseArgs {
    /// Print BuildKit's parser-test dump (syntax only: flags and instructions are not checked)
    #[arg(long, conflicts_with = "json")]
    dump: bool,
    /// Print the typed AST as JSON, with source spans
    #[arg(long)]
    json: bool,
    /// The Dockerfile to read, or - for standard input
    #[arg(default_value = "Dockerfile")]
    file: String,
}

fn read_source(file: &str) -> anyhow::Result<(String, String)> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the Dockerfile from standard input")?;
        return Ok((
            "<stdin>".into(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    Ok((
        file.to_string(),
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

fn fail(name: &str, err: ParseError) -> ExitCode {
    eprintln!("error: {}", err.in_file(name));
    ExitCode::FAILURE
}

pub fn run(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let (name, source) = read_source(&args.file)?;
    if args.dump {
        return Ok(match parse_syntax(&source) {
            Ok(tree) => {
                print!("{}", tree.dump());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&name, e),
        });
    }
    let dockerfile = match berth_grammar::parse(&source) {
        Ok(d) => d,
        Err(e) => return Ok(fail(&name, e)),
    };
    for w in &dockerfile.warnings {
        eprintln!("warning: {name}:{}: {}", w.span.start_line, w.message);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&dockerfile)?);
    } else {
        print_listing(&dockerfile, &source);
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per instruction: its lines in the file and its text.
fn print_listing(dockerfile: &Dockerfile, source: &str) {
    for d in &dockerfile.directives {
        println!("# {}={}", d.name, d.value);
    }
    for ins in &dockerfile.instructions {
        let lines = if ins.span.start_line == ins.span.end_line {
            format!("{}", ins.span.start_line)
        } else {
            format!("{}-{}", ins.span.start_line, ins.span.end_line)
        };
        let first = source
            .get(ins.keyword.span.start..)
            .and_then(|s| s.lines().next())
            .unwrap_or("")
            .trim_end();
        println!(
            "{lines:>7}  {:<11} {}",
            ins.command.name(),
            first.get(ins.keyword.value.len()..).unwrap_or("").trim()
        );
    }
}
