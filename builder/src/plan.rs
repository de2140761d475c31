//! Lowering: the AST split into stages, the meta ARGs before the first FROM
//! resolved, and the stages a target needs found through `FROM <stage>`,
//! `COPY --from` and `RUN --mount=from=`.

use crate::error::{Error, Result};
use crate::vars::{expand_word, Vars};
use berth_grammar::{Command, Dockerfile, Instruction};
use std::collections::{BTreeMap, BTreeSet};

/// One stage: its FROM and the instructions after it.
#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    pub from: Instruction,
    /// The base as written in FROM, expanded with the meta ARGs.
    pub base: String,
    pub instructions: Vec<Instruction>,
    /// Stages this one needs first (indexes).
    pub deps: BTreeSet<usize>,
}

impl Stage {
    /// What BuildKit calls the stage in progress lines.
    pub fn label(&self, stages: usize) -> Option<String> {
        match &self.name {
            Some(n) => Some(n.clone()),
            None if stages > 1 => Some(format!("stage-{}", self.index)),
            None => None,
        }
    }
}

/// Where a stage's FROM or a `--from` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Scratch,
    Stage(usize),
    Image(String),
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub stages: Vec<Stage>,
    /// Meta ARGs (before the first FROM) with their values.
    pub meta_args: Vars,
    /// Build args some ARG declared (for the unused-arg warning).
    pub declared: BTreeSet<String>,
}

impl Plan {
    /// Resolves a stage name or index (`COPY --from=0`, `FROM builder`).
    pub fn stage_named(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(s) = self.stages[..before]
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(s.index);
        }
        match name.parse::<usize>() {
            Ok(i) if i < before => Some(i),
            _ => None,
        }
    }

    /// What `name` means in stage `at`: an earlier stage, scratch or an image.
    pub fn source(&self, name: &str, at: usize) -> Source {
        if name.eq_ignore_ascii_case("scratch") {
            Source::Scratch
        } else if let Some(i) = self.stage_named(name, at) {
            Source::Stage(i)
        } else {
            Source::Image(name.to_string())
        }
    }

    /// The target stage: `--target NAME` or the last one.
    pub fn target(&self, target: Option<&str>) -> Result<usize> {
        match target {
            None => Ok(self.stages.len() - 1),
            Some(t) => self
                .stages
                .iter()
                .find(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
                .map(|s| s.index)
                .ok_or_else(|| {
                    Error::Invalid(format!("failed to reach build target {t} in Dockerfile"))
                }),
        }
    }

    /// The stages `target` needs, itself included.
    pub fn needed(&self, target: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if out.insert(i) {
                todo.extend(self.stages[i].deps.iter().copied());
            }
        }
        out
    }
}

/// Names the build refers to by `--from=` or `from=` in one instruction.
fn referenced(ins: &Instruction) -> Vec<String> {
    match &ins.command {
        Command::Copy(c) | Command::Add(c) => c.from.iter().map(|w| w.value.clone()).collect(),
        Command::Run(r) => r.mounts.iter().filter_map(|m| m.from.clone()).collect(),
        _ => Vec::new(),
    }
}

/// Splits `df` into stages. `build_args` are the `--build-arg` values.
pub fn lower(df: &Dockerfile, build_args: &BTreeMap<String, String>) -> Result<Plan> {
    let lex = berth_grammar::shell::ShellLex::new(df.escape);
    let mut meta_args = Vars::default();
    for (k, v) in crate::vars::predefined_args() {
        meta_args.set(&k, &v);
    }
    let mut declared = BTreeSet::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        match &ins.command {
            Command::From(f) => {
                let base = expand_word(&lex, &f.image.value, &meta_args).map_err(|e| {
                    Error::Invalid(format!(
                        "Dockerfile:{}: FROM: {e}",
                        f.image.span.start_line
                    ))
                })?;
                if base.is_empty() {
                    return Err(Error::Invalid(format!(
                        "Dockerfile:{}: base name ({}) should not be blank",
                        ins.span.start_line, f.image.value
                    )));
                }
                let name = f.name.as_ref().map(|n| n.value.to_ascii_lowercase());
                if let Some(n) = &name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                        return Err(Error::Invalid(format!(
                            "Dockerfile:{}: duplicate stage name {n:?}",
                            ins.span.start_line
                        )));
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    from: ins.clone(),
                    base,
                    instructions: Vec::new(),
                    deps: BTreeSet::new(),
                });
            }
            Command::Arg { args } if stages.is_empty() => {
                for a in args {
                    declared.insert(a.name.value.clone());
                    let value = match build_args.get(&a.name.value) {
                        Some(v) => Some(v.clone()),
                        None => match &a.default {
                            Some(d) => Some(expand_word(&lex, &d.value, &meta_args).map_err(
                                |e| {
                                    Error::Invalid(format!(
                                        "Dockerfile:{}: ARG: {e}",
                                        ins.span.start_line
                                    ))
                                },
                            )?),
                            None => None,
                        },
                    };
                    match value {
                        Some(v) => meta_args.set(&a.name.value, &v),
                        None => meta_args.unset(&a.name.value),
                    }
                }
            }
            _ if stages.is_empty() => {
                return Err(Error::Invalid(format!(
                    "Dockerfile:{}: {} before the first FROM: only ARG may come first (no build stage in current context)",
                    ins.span.start_line,
                    ins.command.name()
                )))
            }
            _ => {
                if let Command::Arg { args } = &ins.command {
                    declared.extend(args.iter().map(|a| a.name.value.clone()));
                }
                if let Some(last) = stages.last_mut() {
                    last.instructions.push(ins.clone());
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(Error::Invalid(
            "the Dockerfile has no FROM instruction: nothing to build".into(),
        ));
    }
    let mut plan = Plan {
        stages,
        meta_args,
        declared,
    };
    for i in 0..plan.stages.len() {
        let mut deps = BTreeSet::new();
        if let Source::Stage(d) = plan.source(&plan.stages[i].base, i) {
            deps.insert(d);
        }
        for ins in &plan.stages[i].instructions {
            for name in referenced(ins) {
                let name = expand_word(&lex, &name, &plan.meta_args).unwrap_or(name);
                if let Source::Stage(d) = plan.source(&name, i) {
                    deps.insert(d);
                } else if plan.stages[i..]
                    .iter()
                    .any(|s| s.name.as_deref() == Some(name.to_ascii_lowercase().as_str()))
                {
                    return Err(Error::Invalid(format!(
                        "Dockerfile:{}: stage {name:?} is used before it is defined",
                        ins.span.start_line
                    )));
                }
            }
        }
        plan.stages[i].deps = deps;
    }
    Ok(plan)
}
