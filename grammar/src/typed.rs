//! The syntax tree → the typed AST: each instruction's arguments and flags
//! checked as BuildKit's instruction stage checks them, with its messages.

use crate::ast::*;
use crate::error::ParseError;
use crate::scanner::Scanner;
use crate::span::Span;
use crate::suggest::nearest;
use crate::syntax::{parse_heredoc_marker, Args, SyntaxNode, SyntaxTree};
use std::collections::BTreeMap;

const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

pub(crate) fn lower(source: &str, tree: SyntaxTree) -> Result<Dockerfile, ParseError> {
    let errors = Errors {
        scanner: Scanner::new(source),
    };
    let instructions = tree
        .nodes
        .iter()
        .map(|n| errors.instruction(n))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Dockerfile {
        escape: tree.escape,
        directives: tree.directives,
        instructions,
        warnings: tree.warnings,
    })
}

/// Builds located errors (the scanner knows the source's lines).
struct Errors<'a> {
    scanner: Scanner<'a>,
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Str,
    Bool,
    List,
}

/// The flags an instruction was given, checked against what it accepts.
struct Flags {
    values: BTreeMap<&'static str, Vec<(Option<String>, Span)>>,
}

impl Flags {
    fn string(&self, name: &str) -> Option<Word> {
        self.values
            .get(name)
            .and_then(|v| v.first())
            .map(|(val, span)| Word {
                value: val.clone().unwrap_or_default(),
                span: *span,
            })
    }
    fn list(&self, name: &str) -> Vec<Word> {
        self.values
            .get(name)
            .map(|v| {
                v.iter()
                    .map(|(val, span)| Word {
                        value: val.clone().unwrap_or_default(),
                        span: *span,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    fn boolean(&self, name: &str) -> Option<bool> {
        self.values
            .get(name)
            .and_then(|v| v.first())
            .map(|(val, _)| {
                val.as_deref()
                    .is_none_or(|v| v.eq_ignore_ascii_case("true"))
            })
    }
}

fn words_of(args: &Args) -> Vec<Word> {
    match args {
        Args::Json(w) | Args::Words(w) => w.clone(),
        Args::Text(w) => vec![w.clone()],
        _ => Vec::new(),
    }
}

fn command_line(args: &Args, rest: Span) -> CommandLine {
    match args {
        Args::Json(words) => CommandLine::Exec {
            args: words.clone(),
        },
        Args::Text(w) => CommandLine::Shell { command: w.clone() },
        _ => CommandLine::Shell {
            command: Word {
                value: String::new(),
                span: rest,
            },
        },
    }
}

impl Errors<'_> {
    fn at(&self, span: Span, message: impl Into<String>) -> ParseError {
        self.scanner.error_at(span.start, span.end, message)
    }

    fn flags(
        &self,
        node: &SyntaxNode,
        keyword: &str,
        spec: &[(&'static str, FlagKind)],
    ) -> Result<Flags, ParseError> {
        let mut values: BTreeMap<&'static str, Vec<(Option<String>, Span)>> = BTreeMap::new();
        for flag in &node.flags {
            let body = flag.value.strip_prefix("--").unwrap_or(&flag.value);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(&(known, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
                let mut err = self.at(flag.span, format!("unknown flag: --{name}"));
                err.help = match nearest(name, &names) {
                    Some(n) => Some(format!("did you mean `--{n}`?")),
                    None if names.is_empty() => Some(format!("{keyword} takes no flags")),
                    None => Some(format!(
                        "{keyword} accepts {}",
                        names
                            .iter()
                            .map(|n| format!("--{n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                return Err(err);
            };
            match kind {
                FlagKind::Str | FlagKind::List if value.is_none() => {
                    return Err(self.at(flag.span, format!("missing a value on flag: --{name}")));
                }
                FlagKind::Bool => {
                    if let Some(v) = &value {
                        if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                            return Err(self.at(
                                flag.span,
                                format!("expecting boolean value for flag {name}, not: {v}"),
                            ));
                        }
                    }
                }
                _ => {}
            }
            let entry = values.entry(known).or_default();
            if kind != FlagKind::List && !entry.is_empty() {
                return Err(self.at(flag.span, format!("duplicate flag specified: --{name}")));
            }
            entry.push((value, flag.span));
        }
        Ok(Flags { values })
    }

    fn instruction(&self, node: &SyntaxNode) -> Result<Instruction, ParseError> {
        let command = self.command(node)?;
        Ok(Instruction {
            keyword: node.keyword.clone(),
            span: node.span,
            comments: node.comments.clone(),
            command,
        })
    }

    fn command(&self, node: &SyntaxNode) -> Result<Command, ParseError> {
        use FlagKind::*;
        let upper = node.keyword.value.to_ascii_uppercase();
        let kw = upper.as_str();
        let need_one = |what: &str| -> ParseError {
            self.at(node.keyword.span, format!("{kw} requires {what}"))
        };
        let no_flags = |node: &SyntaxNode| self.flags(node, kw, &[]);
        match kw {
            "FROM" => {
                let flags = self.flags(node, kw, &[("platform", Str)])?;
                let args = words_of(&node.args);
                let (image, name) = match args.as_slice() {
                    [image] => (image.clone(), None),
                    [image, as_kw, name] if as_kw.value.eq_ignore_ascii_case("as") => {
                        let lowered = name.value.to_lowercase();
                        let valid = lowered
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_lowercase())
                            && lowered.chars().all(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)
                            });
                        if !valid {
                            return Err(self.at(
                                name.span,
                                format!(
                                    "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                                    name.value
                                ),
                            ));
                        }
                        (
                            image.clone(),
                            Some(Word {
                                value: lowered,
                                span: name.span,
                            }),
                        )
                    }
                    _ => return Err(need_one("either one or three arguments")),
                };
                Ok(Command::From(From {
                    image,
                    platform: flags.string("platform"),
                    name,
                }))
            }
            "RUN" => {
                let flags = self.flags(
                    node,
                    kw,
                    &[
                        ("mount", List),
                        ("network", Str),
                        ("security", Str),
                        ("device", List),
                    ],
                )?;
                if node.args == Args::Empty {
                    return Err(need_one("at least one argument"));
                }
                let mounts = flags
                    .list("mount")
                    .iter()
                    .map(|m| self.mount(m))
                    .collect::<Result<Vec<_>, _>>()?;
                let network = flags.string("network");
                if let Some(n) = &network {
                    if !n.value.contains('$')
                        && !matches!(n.value.as_str(), "default" | "none" | "host")
                    {
                        return Err(self.at(
                            n.span,
                            format!(
                                "unsupported network mode {:?}: use default, none or host",
                                n.value
                            ),
                        ));
                    }
                }
                let security = flags.string("security");
                if let Some(s) = &security {
                    if !s.value.contains('$') && !matches!(s.value.as_str(), "sandbox" | "insecure")
                    {
                        return Err(self.at(
                            s.span,
                            format!(
                                "unsupported security mode {:?}: use sandbox or insecure",
                                s.value
                            ),
                        ));
                    }
                }
                Ok(Command::Run(Run {
                    command: command_line(&node.args, node.rest),
                    heredocs: node.heredocs.clone(),
                    mounts,
                    network,
                    security,
                    devices: flags.list("device"),
                }))
            }
            "CMD" | "ENTRYPOINT" => {
                no_flags(node)?;
                let command = command_line(&node.args, node.rest);
                Ok(if kw == "CMD" {
                    Command::Cmd { command }
                } else {
                    Command::Entrypoint { command }
                })
            }
            "SHELL" => {
                no_flags(node)?;
                match &node.args {
                    Args::Json(words) if !words.is_empty() => Ok(Command::Shell {
                        shell: words.clone(),
                    }),
                    Args::Json(_) | Args::Empty => Err(need_one("at least one argument")),
                    _ => Err(self.at(node.rest, "SHELL requires the arguments to be in JSON form")),
                }
            }
            "ENV" | "LABEL" => {
                no_flags(node)?;
                let Args::Pairs { pairs, .. } = &node.args else {
                    return Err(need_one("at least one argument"));
                };
                let mut out = Vec::new();
                for (key, value) in pairs {
                    if key.value.is_empty() {
                        return Err(self.at(key.span, format!("{kw} names can not be blank")));
                    }
                    out.push(KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                    });
                }
                Ok(if kw == "ENV" {
                    Command::Env { pairs: out }
                } else {
                    Command::Label { pairs: out }
                })
            }
            "MAINTAINER" | "USER" | "WORKDIR" | "STOPSIGNAL" => {
                no_flags(node)?;
                let Args::Text(w) = &node.args else {
                    return Err(need_one("exactly one argument"));
                };
                let w = w.clone();
                Ok(match kw {
                    "MAINTAINER" => Command::Maintainer { name: w },
                    "USER" => Command::User { user: w },
                    "WORKDIR" => Command::Workdir { path: w },
                    _ => Command::StopSignal { signal: w },
                })
            }
            "EXPOSE" | "VOLUME" => {
                no_flags(node)?;
                let words = words_of(&node.args);
                if words.is_empty() {
                    return Err(need_one("at least one argument"));
                }
                if let Some(empty) = words.iter().find(|w| w.value.trim().is_empty()) {
                    return Err(self.at(
                        empty.span,
                        format!("{kw} specified can not be an empty string"),
                    ));
                }
                Ok(if kw == "EXPOSE" {
                    Command::Expose { ports: words }
                } else {
                    Command::Volume { paths: words }
                })
            }
            "ARG" => {
                no_flags(node)?;
                let words = words_of(&node.args);
                if words.is_empty() {
                    return Err(need_one("at least one argument"));
                }
                let mut args = Vec::new();
                for w in words {
                    let (name, default) = match w.value.split_once('=') {
                        Some((n, d)) => (n.to_string(), Some(d.to_string())),
                        None => (w.value.clone(), None),
                    };
                    if name.is_empty() {
                        return Err(self.at(w.span, "ARG names can not be blank"));
                    }
                    let name_end = w.span.start + name.len();
                    let name_span =
                        self.scanner
                            .map
                            .span(self.scanner.text, w.span.start, name_end);
                    let default = default.map(|d| Word {
                        value: d,
                        span: self.scanner.map.span(
                            self.scanner.text,
                            (name_end + 1).min(w.span.end),
                            w.span.end,
                        ),
                    });
                    args.push(ArgDecl {
                        name: Word {
                            value: name,
                            span: name_span,
                        },
                        default,
                    });
                }
                Ok(Command::Arg { args })
            }
            "ADD" | "COPY" => {
                let spec: &[(&'static str, FlagKind)] = if kw == "ADD" {
                    &[
                        ("chown", Str),
                        ("chmod", Str),
                        ("link", Bool),
                        ("checksum", Str),
                        ("keep-git-dir", Bool),
                        ("unpack", Bool),
                        ("exclude", List),
                    ]
                } else {
                    &[
                        ("from", Str),
                        ("chown", Str),
                        ("chmod", Str),
                        ("link", Bool),
                        ("parents", Bool),
                        ("exclude", List),
                    ]
                };
                let flags = self.flags(node, kw, spec)?;
                let mut words = words_of(&node.args);
                let Some(dest) = words.pop() else {
                    return Err(need_one("at least two arguments"));
                };
                if words.is_empty() {
                    return Err(self.at(
                        node.rest,
                        format!("{kw} requires at least two arguments, but only one was provided. Destination could not be determined"),
                    ));
                }
                let json = matches!(node.args, Args::Json(_));
                if !json && matches!(parse_heredoc_marker(&dest.value), Ok(Some(_))) {
                    return Err(self.at(
                        dest.span,
                        format!("{kw} cannot accept a heredoc as a destination"),
                    ));
                }
                let mut heredocs = node.heredocs.iter();
                let mut sources = Vec::new();
                for w in words {
                    let marker = if json {
                        None
                    } else {
                        parse_heredoc_marker(&w.value).ok().flatten()
                    };
                    match marker {
                        Some(m) => {
                            let Some(h) = heredocs.next() else {
                                return Err(
                                    self.at(w.span, format!("heredoc {} has no body", m.name))
                                );
                            };
                            let mut h = h.clone();
                            h.content = h.chomped_content();
                            sources.push(Source::Heredoc(h));
                        }
                        None => sources.push(Source::Path(w)),
                    }
                }
                if let Some(chmod) = flags.string("chmod") {
                    let v = &chmod.value;
                    let octal = !v.is_empty()
                        && v.len() <= 4
                        && v.chars().all(|c| ('0'..='7').contains(&c));
                    if !octal && !v.contains('$') && !v.contains(['+', '=', '-']) {
                        return Err(self.at(chmod.span, format!("invalid chmod parameter {v:?}: use octal like 0755 or symbolic like u+x")));
                    }
                }
                Ok({
                    let copy = Copy {
                        sources,
                        dest,
                        json,
                        from: flags.string("from"),
                        chown: flags.string("chown"),
                        chmod: flags.string("chmod"),
                        link: flags.boolean("link").unwrap_or(false),
                        parents: flags.boolean("parents").unwrap_or(false),
                        exclude: flags.list("exclude"),
                        checksum: flags.string("checksum"),
                        keep_git_dir: flags.boolean("keep-git-dir"),
                        unpack: flags.boolean("unpack"),
                    };
                    if kw == "ADD" {
                        Command::Add(copy)
                    } else {
                        Command::Copy(copy)
                    }
                })
            }
            "ONBUILD" => {
                no_flags(node)?;
                let Args::Sub(child) = &node.args else {
                    return Err(need_one("at least one argument"));
                };
                let child_kw = child.keyword.value.to_ascii_uppercase();
                match child_kw.as_str() {
                    "ONBUILD" => {
                        return Err(self.at(
                            child.keyword.span,
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                        ))
                    }
                    "FROM" | "MAINTAINER" => {
                        return Err(self.at(
                            child.keyword.span,
                            format!("{child_kw} isn't allowed as an ONBUILD trigger"),
                        ))
                    }
                    _ => {}
                }
                let trigger = self.instruction(child)?;
                Ok(Command::Onbuild {
                    trigger: Box::new(trigger),
                })
            }
            "HEALTHCHECK" => self.healthcheck(node),
            _ => {
                let mut err = self.at(
                    node.keyword.span,
                    format!("unknown instruction: {}", node.keyword.value),
                );
                if let Some(s) = nearest(&node.keyword.value, INSTRUCTIONS) {
                    err.help = Some(format!("did you mean `{s}`?"));
                }
                Err(err)
            }
        }
    }

    fn healthcheck(&self, node: &SyntaxNode) -> Result<Command, ParseError> {
        use FlagKind::*;
        let flags = self.flags(
            node,
            "HEALTHCHECK",
            &[
                ("interval", Str),
                ("timeout", Str),
                ("start-period", Str),
                ("start-interval", Str),
                ("retries", Str),
            ],
        )?;
        let Args::Health { kind, command } = &node.args else {
            return Err(self.at(
                node.keyword.span,
                "HEALTHCHECK requires at least one argument",
            ));
        };
        let empty = Healthcheck {
            test: None,
            interval_ns: None,
            timeout_ns: None,
            start_period_ns: None,
            start_interval_ns: None,
            retries: None,
        };
        match kind.value.to_ascii_uppercase().as_str() {
            "NONE" => {
                if **command != Args::Empty {
                    return Err(self.at(node.rest, "HEALTHCHECK NONE takes no arguments"));
                }
                if !node.flags.is_empty() {
                    return Err(self.at(
                        node.flags[0].span,
                        "options cannot be specified for HEALTHCHECK NONE",
                    ));
                }
                Ok(Command::Healthcheck(empty))
            }
            "CMD" => {
                let test = match &**command {
                    Args::Empty => {
                        return Err(self.at(kind.span, "Missing command after HEALTHCHECK CMD"))
                    }
                    Args::Json(w) if w.is_empty() => {
                        return Err(self.at(kind.span, "Missing command after HEALTHCHECK CMD"))
                    }
                    other => command_line(other, node.rest),
                };
                let duration = |name: &str| -> Result<Option<u64>, ParseError> {
                    let Some(w) = flags.string(name) else {
                        return Ok(None);
                    };
                    let ns = parse_duration(&w.value).ok_or_else(|| {
                        self.at(w.span, format!("time: invalid duration {:?}", w.value))
                    })?;
                    if ns != 0 && ns < 1_000_000 {
                        return Err(
                            self.at(w.span, format!("Interval {name:?} cannot be less than 1ms"))
                        );
                    }
                    Ok(Some(ns))
                };
                let retries = match flags.string("retries") {
                    None => None,
                    Some(w) => match w.value.parse::<i64>() {
                        Ok(n) if n < 0 => {
                            return Err(
                                self.at(w.span, format!("--retries cannot be negative ({n})"))
                            )
                        }
                        Ok(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
                        Err(_) => {
                            return Err(self.at(
                                w.span,
                                format!("--retries must be a number, not {:?}", w.value),
                            ))
                        }
                    },
                };
                Ok(Command::Healthcheck(Healthcheck {
                    test: Some(test),
                    interval_ns: duration("interval")?,
                    timeout_ns: duration("timeout")?,
                    start_period_ns: duration("start-period")?,
                    start_interval_ns: duration("start-interval")?,
                    retries,
                }))
            }
            other => Err(self.at(
                kind.span,
                format!("Unknown type {other:?} in HEALTHCHECK (try CMD)"),
            )),
        }
    }

    /// `type=cache,target=/x,...` as BuildKit reads a `--mount`. Options
    /// that name build args (`type=$T`) are checked by the builder once it
    /// has expanded them; until then the mount keeps its text in `raw`.
    fn mount(&self, flag: &Word) -> Result<Mount, ParseError> {
        match parse_mount(&flag.value, flag.span) {
            Ok(m) => Ok(m),
            Err(_) if flag.value.contains('$') => {
                let mut m = empty_mount(flag.span);
                m.raw = flag.value.clone();
                Ok(m)
            }
            Err(msg) => Err(self.at(flag.span, msg)),
        }
    }
}

fn empty_mount(span: Span) -> Mount {
    Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        readonly: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: None,
        size: None,
        env: None,
        raw: String::new(),
        span,
    }
}

/// Reads one `--mount` value (`type=cache,target=/x,...`) as BuildKit does.
pub fn parse_mount(value: &str, span: Span) -> Result<Mount, String> {
    let mut m = empty_mount(span);
    m.raw = value.to_string();
    let parse_bool = |key: &str, v: Option<&str>| -> Result<bool, String> {
        match v.map(|s| s.to_ascii_lowercase()) {
            None => Ok(true),
            Some(s) if s == "true" => Ok(true),
            Some(s) if s == "false" => Ok(false),
            Some(s) => Err(format!("invalid value for {key}: {s}")),
        }
    };
    for field in split_csv(value) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = |v: Option<String>| {
            v.ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"))
        };
        match key.as_str() {
            "type" => {
                m.kind = match need(value)?.as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    other => return Err(format!("unsupported mount type {other:?}")),
                }
            }
            "target" | "dst" | "destination" => m.target = Some(need(value)?),
            "source" | "src" => m.source = Some(need(value)?),
            "from" => m.from = Some(need(value)?),
            "id" => m.id = Some(need(value)?),
            "ro" | "readonly" => m.readonly = Some(parse_bool(&key, value.as_deref())?),
            "rw" | "readwrite" => m.readonly = Some(!parse_bool(&key, value.as_deref())?),
            "sharing" => {
                let v = need(value)?;
                if !matches!(v.as_str(), "shared" | "private" | "locked") {
                    return Err(format!("unsupported sharing value {v:?}"));
                }
                m.sharing = Some(v)
            }
            "mode" => m.mode = Some(need(value)?),
            "uid" => m.uid = Some(need(value)?),
            "gid" => m.gid = Some(need(value)?),
            "required" => m.required = Some(parse_bool(&key, value.as_deref())?),
            "size" => m.size = Some(need(value)?),
            "env" => m.env = Some(need(value)?),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if m.target.is_none()
        && matches!(
            m.kind,
            MountType::Bind | MountType::Cache | MountType::Tmpfs
        )
    {
        return Err("mount target must be specified (target=/path)".into());
    }
    Ok(m)
}

/// Expands the value of every `key=value` field of a `--mount` with
/// `expand` (bare flags such as `ro` stay as written), then reads it.
pub fn expand_mount(
    raw: &str,
    span: Span,
    mut expand: impl FnMut(&str) -> Result<String, String>,
) -> Result<Mount, String> {
    let mut fields = Vec::new();
    for field in split_csv(raw) {
        match field.split_once('=') {
            Some((k, v)) => {
                let v = expand(v)?;
                // Quotes keep a comma the expansion brought in.
                if v.contains(',') {
                    fields.push(format!("{k}=\"{v}\""));
                } else {
                    fields.push(format!("{k}={v}"));
                }
            }
            None => fields.push(field),
        }
    }
    parse_mount(&fields.join(","), span)
}

/// Splits a comma-separated mount spec; double quotes protect commas.
fn split_csv(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|f| !f.is_empty()).collect()
}

/// Go's `time.ParseDuration`: `1h30m`, `1.5s`, `300ms`, `0`. Nanoseconds.
fn parse_duration(s: &str) -> Option<u64> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    (total < u64::MAX as f64).then_some(total as u64)
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, split_csv};

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(5_000_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("1.5ms"), Some(1_500_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn csv() {
        assert_eq!(
            split_csv("type=cache,target=/a"),
            vec!["type=cache", "target=/a"]
        );
        assert_eq!(split_csv("\"a,b\",c"), vec!["a,b", "c"]);
    }
}
