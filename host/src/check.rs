//! `percore check FILE.wasm`: whether a host would take a component, told
//! without a host. It compiles the file the way a deploy does (the same
//! [`HostEngine`], the same compiler process and settings, the same world
//! detection and linking) and reports the world, the imports, and what
//! stops it from deploying, with what to do about it.
//!
//! It owns no rule of its own: every verdict is the engine's
//! ([`HostEngine::compile_untrusted`]); this module only gathers it into a
//! [`CheckReport`].

use std::path::Path;

use serde::Serialize;

use crate::compiler::ChildCompiler;
use crate::engine::{CompileError, EngineOptions, HostEngine, World};

/// What `percore check` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The file checked.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex (what `percore routes` shows once
    /// deployed).
    pub hash: String,
    /// Whether a host would take it (with `--index` when
    /// [`CheckReport::needs_index`]).
    pub deployable: bool,
    /// The world it serves, when its exports name one.
    pub world: Option<World>,
    /// Its imports (interfaces), when it compiled (and linked, or failed
    /// only to link).
    pub imports: Vec<String>,
    /// The imports the host cannot satisfy, as the linker named them.
    pub unsatisfied: Vec<String>,
    /// Whether it imports `percore:host/wiki` (the host then needs
    /// `--index DIR`).
    pub needs_index: bool,
    /// Why its instances answer one request each (the tool that built it),
    /// when they do: a host serves it in `request` isolation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_request_per_instance: Option<String>,
    /// How long compiling took, in milliseconds.
    pub compile_ms: u64,
    /// Why it cannot be deployed, and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Checks the component in `path`, compiling it with `compiler` (the
/// compiler process a deploy uses; `None` compiles in this process with
/// the same settings). An unreadable file is an error; a file that is not
/// a deployable component is a report with [`CheckReport::error`] set.
pub fn check(path: &Path, compiler: Option<ChildCompiler>) -> anyhow::Result<CheckReport> {
    use anyhow::Context as _;
    let bytes = crate::registry::read_component_file(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let engine = HostEngine::new(EngineOptions {
        // Report a `wiki` import rather than refuse it: the host serving
        // it may have an index.
        has_index: true,
        // One instance slot: nothing is instantiated here.
        max_instances: 1,
        cache_dir: None,
        child_compiler: compiler,
        ..EngineOptions::default()
    })?;
    let name = path.display().to_string();
    let started = std::time::Instant::now();
    let compiled = engine.compile_untrusted(&name, &bytes);
    let compile_ms = started.elapsed().as_millis() as u64;
    let mut report = CheckReport {
        file: name,
        size: bytes.len() as u64,
        hash: crate::engine::sha256_hex(&bytes),
        deployable: false,
        world: None,
        imports: Vec::new(),
        unsatisfied: Vec::new(),
        needs_index: false,
        one_request_per_instance: None,
        compile_ms,
        error: None,
    };
    match compiled {
        Ok(component) => {
            report.deployable = true;
            report.world = Some(component.world);
            report.needs_index = component.imports_wiki;
            report.one_request_per_instance = component.one_request_per_instance.clone();
            report.imports = imports_of(&engine, component.pre.component());
        }
        Err(e) => {
            if let CompileError::WrongWorld { world, detail, .. } = &e {
                report.world = Some(*world);
                report.unsatisfied = unsatisfied_imports(detail);
                // It compiled but did not link: compile it here once more
                // to list its imports (the verdict stays the deploy's).
                if let Ok(component) = wasmtime::component::Component::new(engine.engine(), &bytes)
                {
                    report.imports = imports_of(&engine, &component);
                }
            }
            let hint = match &e {
                CompileError::UnknownWorld { .. } => Some(
                    "make a percore handler with `percore new NAME`, or build a wasi:http/proxy 0.2 component".to_owned(),
                ),
                CompileError::WrongWorld { .. } if !report.unsatisfied.is_empty() => Some(format!(
                    "the host provides WASI 0.2 (without authority), wasi:http 0.2 and percore:host: remove the code or the dependency that imports {}",
                    report.unsatisfied.join(", ")
                )),
                _ => None,
            };
            report.error = Some(match hint {
                Some(hint) => format!("{e}; {hint}"),
                None => e.to_string(),
            });
        }
    }
    Ok(report)
}

/// The names of what `component` imports.
fn imports_of(engine: &HostEngine, component: &wasmtime::component::Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine.engine())
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The imports a linker error names (wasmtime stops at the first one it
/// cannot satisfy: "component imports instance `NAME`, but a matching
/// implementation was not found in the linker").
fn unsatisfied_imports(detail: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = detail;
    while let Some(at) = rest.find("imports ") {
        rest = &rest[at + "imports ".len()..];
        let Some(open) = rest.find('`') else { break };
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        let name = &rest[open + 1..open + 1 + len];
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        rest = &rest[open + 1 + len..];
    }
    names
}

impl std::fmt::Display for CheckReport {
    /// The report for people: what it is, and how to deploy it (why it
    /// cannot be is the error, printed apart).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.deployable {
            "deployable"
        } else {
            "NOT deployable"
        };
        writeln!(f, "{}: {verdict}", self.file)?;
        writeln!(f, "  size:     {} bytes, sha256:{}", self.size, self.hash)?;
        match self.world {
            Some(world) => writeln!(f, "  world:    {world}")?,
            None => writeln!(f, "  world:    none percore serves")?,
        }
        if self.deployable {
            writeln!(
                f,
                "  compiled: in {} ms (wasmtime {}, the settings of a deploy)",
                self.compile_ms,
                crate::engine::WASMTIME_VERSION
            )?;
        }
        if !self.imports.is_empty() {
            writeln!(f, "  imports:  {}", self.imports.len())?;
            for import in &self.imports {
                let mark = if self.unsatisfied.contains(import) {
                    "   <- the host cannot satisfy it"
                } else {
                    ""
                };
                writeln!(f, "    {import}{mark}")?;
            }
        }
        for import in &self.unsatisfied {
            if !self.imports.contains(import) {
                writeln!(f, "  the host cannot satisfy the import {import}")?;
            }
        }
        if self.needs_index {
            writeln!(
                f,
                "  it imports {}: serve it with --index DIR (`percore index DUMP.xml --out DIR` builds one)",
                crate::engine::WIKI_INTERFACE
            )?;
        }
        if let Some(tool) = &self.one_request_per_instance {
            writeln!(
                f,
                "  built by {tool}, whose instances answer one request each: served in request isolation"
            )?;
        }
        // An error is not repeated here: the command prints it last, as
        // every command prints its error.
        if self.error.is_none() {
            writeln!(f, "deploy it: percore deploy /PREFIX {}", self.file)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsatisfied_imports_are_read_from_the_linker_error() {
        let detail = "component imports instance `evil:host/secrets@1.0.0`, but a matching implementation was not found in the linker: instance export `get` has the wrong type";
        assert_eq!(
            unsatisfied_imports(detail),
            vec!["evil:host/secrets@1.0.0".to_owned()]
        );
        assert!(unsatisfied_imports("no such thing").is_empty());
    }
}
