//! The typed AST. Every node carries the span of the source it came from.
//! Values are kept as written (quotes, escapes and `$VAR`s included): expanding
//! them needs the build's environment, which the builder has and the parser
//! does not.

use crate::scanner::Warning;
use crate::span::Span;
use crate::syntax::Directive;
use serde::Serialize;

/// A piece of source text: its value and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    pub value: String,
    pub span: Span,
}

/// A heredoc body attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    pub name: String,
    /// The body, every line with its newline; leading tabs are kept even for
    /// `<<-` (see `chomp`).
    pub content: String,
    /// False when the name was quoted: the body is not to be expanded.
    pub expand: bool,
    /// `<<-`: leading tabs are to be stripped.
    pub chomp: bool,
    /// The file descriptor before `<<` (0 when none was given).
    pub fd: u32,
    pub span: Span,
}

impl Heredoc {
    /// The body with leading tabs removed when the marker was `<<-`.
    pub fn chomped_content(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, Serialize)]
pub struct Dockerfile {
    pub escape: char,
    pub directives: Vec<Directive>,
    pub instructions: Vec<Instruction>,
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The value of a parser directive (`syntax`, `escape`, `check`).
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// The keyword as written (`from`, `FROM`, ...).
    pub keyword: Word,
    /// From the keyword to the end of the last line, heredoc bodies included.
    pub span: Span,
    /// The comment lines directly above it, without `#`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<String>,
    #[serde(flatten)]
    pub command: Command,
}

/// An instruction's meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "instruction", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Command {
    From(From),
    Run(Run),
    Cmd {
        command: CommandLine,
    },
    Label {
        pairs: Vec<KeyValue>,
    },
    Maintainer {
        name: Word,
    },
    Expose {
        ports: Vec<Word>,
    },
    Env {
        pairs: Vec<KeyValue>,
    },
    Add(Copy),
    Copy(Copy),
    Entrypoint {
        command: CommandLine,
    },
    Volume {
        paths: Vec<Word>,
    },
    User {
        user: Word,
    },
    Workdir {
        path: Word,
    },
    Arg {
        args: Vec<ArgDecl>,
    },
    Onbuild {
        trigger: Box<Instruction>,
    },
    #[serde(rename = "STOPSIGNAL")]
    StopSignal {
        signal: Word,
    },
    Healthcheck(Healthcheck),
    Shell {
        shell: Vec<Word>,
    },
}

impl Command {
    /// The instruction name in upper case.
    pub fn name(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd { .. } => "CMD",
            Command::Label { .. } => "LABEL",
            Command::Maintainer { .. } => "MAINTAINER",
            Command::Expose { .. } => "EXPOSE",
            Command::Env { .. } => "ENV",
            Command::Add(_) => "ADD",
            Command::Copy(_) => "COPY",
            Command::Entrypoint { .. } => "ENTRYPOINT",
            Command::Volume { .. } => "VOLUME",
            Command::User { .. } => "USER",
            Command::Workdir { .. } => "WORKDIR",
            Command::Arg { .. } => "ARG",
            Command::Onbuild { .. } => "ONBUILD",
            Command::StopSignal { .. } => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Shell { .. } => "SHELL",
        }
    }
}

/// `FROM [--platform=P] image [AS name]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    pub image: Word,
    pub platform: Option<Word>,
    /// The stage name, lower-cased as docker does.
    pub name: Option<Word>,
}

/// Exec form (a JSON array) or shell form (a string for the shell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", rename_all = "lowercase")]
pub enum CommandLine {
    Exec { args: Vec<Word> },
    Shell { command: Word },
}

/// `RUN [--mount=...] [--network=...] [--security=...] command`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub command: CommandLine,
    pub heredocs: Vec<Heredoc>,
    pub mounts: Vec<Mount>,
    pub network: Option<Word>,
    pub security: Option<Word>,
    pub devices: Vec<Word>,
}

/// The type of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

/// One `RUN --mount=type=...,...` with its options as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub readonly: Option<bool>,
    pub sharing: Option<String>,
    pub mode: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub required: Option<bool>,
    pub size: Option<String>,
    pub env: Option<String>,
    /// The option text as written; the builder reads it again after
    /// expanding build args when it names any (`type=$T`).
    pub raw: String,
    pub span: Span,
}

/// A source of COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Source {
    Path(Word),
    Heredoc(Heredoc),
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    pub sources: Vec<Source>,
    pub dest: Word,
    /// Written as a JSON array.
    pub json: bool,
    pub from: Option<Word>,
    pub chown: Option<Word>,
    pub chmod: Option<Word>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<Word>,
    /// ADD only.
    pub checksum: Option<Word>,
    /// ADD only.
    pub keep_git_dir: Option<bool>,
    /// ADD only.
    pub unpack: Option<bool>,
}

/// A `key=value` of ENV or LABEL (values as written, quotes included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: Word,
    pub value: Word,
}

/// `ARG name[=default]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    pub name: Word,
    pub default: Option<Word>,
}

/// HEALTHCHECK: `NONE`, or `CMD` with its options. Durations in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// `None` for `HEALTHCHECK NONE`.
    pub test: Option<CommandLine>,
    pub interval_ns: Option<u64>,
    pub timeout_ns: Option<u64>,
    pub start_period_ns: Option<u64>,
    pub start_interval_ns: Option<u64>,
    pub retries: Option<u32>,
}
