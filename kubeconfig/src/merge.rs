//! Adding a generated kubeconfig to an existing one.
//!
//! Unlike kubectl's `KUBECONFIG` merge (first file wins, silently), a name that exists with
//! different content is reported: writing a K3s-DaaS entry over someone's other cluster, or
//! keeping a stale server address or pin, must be a decision. Identical entries are fine.

use std::fmt;

use kube::config::Kubeconfig;
use serde::Serialize;

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOptions {
    /// Replace entries whose name exists with different content (in place, same position).
    pub force: bool,
    /// Make `from`'s current context (or its only context) the current context.
    pub set_current: bool,
}

/// Names that exist on both sides with different content, per kind of entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conflicts {
    pub clusters: Vec<String>,
    pub users: Vec<String>,
    pub contexts: Vec<String>,
}

impl Conflicts {
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty() && self.users.is_empty() && self.contexts.is_empty()
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (kind, names) in [
            ("clusters", &self.clusters),
            ("users", &self.users),
            ("contexts", &self.contexts),
        ] {
            if names.is_empty() {
                continue;
            }
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{kind} ")?;
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{name:?}")?;
            }
        }
        Ok(())
    }
}

/// Why a merge was refused. Names only, never entry contents (a user entry holds its token).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(
        "entries with these names already exist with different content: {0} (--force replaces them)"
    )]
    Conflict(Conflicts),
    #[error("the kubeconfig to merge has two {kind} named {name:?}")]
    Duplicate { kind: &'static str, name: String },
    #[error(
        "cannot choose a current context: the kubeconfig to merge sets none and has several or none"
    )]
    NoCurrentContext,
    #[error("the current context {0:?} is not defined in the merged kubeconfig")]
    UnknownCurrentContext(String),
}

/// Adds `from`'s clusters, users and contexts to `into`.
///
/// A name already in `into` with identical content is left as is; with different content it
/// is a [`MergeError::Conflict`] listing every such name, unless `options.force`, which
/// replaces the entry in place. New entries are appended in `from`'s order. Preferences,
/// extensions, other entries and unknown fields of `into` are untouched, and so is
/// `current-context` unless `options.set_current`. A missing `apiVersion`/`kind` is set to
/// `v1`/`Config`.
pub fn merge(
    mut into: Kubeconfig,
    from: Kubeconfig,
    options: MergeOptions,
) -> Result<Kubeconfig, MergeError> {
    let from_current = from.current_context.clone();
    let only_context = match from.contexts.as_slice() {
        [only] => Some(only.name.clone()),
        _ => None,
    };
    let mut conflicts = Conflicts::default();
    check(
        "clusters",
        &into.clusters,
        &from.clusters,
        |c| &c.name,
        &mut conflicts.clusters,
    )?;
    check(
        "users",
        &into.auth_infos,
        &from.auth_infos,
        |u| &u.name,
        &mut conflicts.users,
    )?;
    check(
        "contexts",
        &into.contexts,
        &from.contexts,
        |c| &c.name,
        &mut conflicts.contexts,
    )?;
    if !conflicts.is_empty() && !options.force {
        return Err(MergeError::Conflict(conflicts));
    }
    upsert(&mut into.clusters, from.clusters, |c| &c.name);
    upsert(&mut into.auth_infos, from.auth_infos, |u| &u.name);
    upsert(&mut into.contexts, from.contexts, |c| &c.name);
    if options.set_current {
        let current = from_current
            .or(only_context)
            .ok_or(MergeError::NoCurrentContext)?;
        if !into.contexts.iter().any(|c| c.name == current) {
            return Err(MergeError::UnknownCurrentContext(current));
        }
        into.current_context = Some(current);
    }
    into.api_version.get_or_insert_with(|| "v1".to_owned());
    into.kind.get_or_insert_with(|| "Config".to_owned());
    Ok(into)
}

/// Records names of `from` that exist in `into` with different content; refuses duplicate
/// names within `from`.
fn check<T: Serialize>(
    kind: &'static str,
    into: &[T],
    from: &[T],
    name: impl Fn(&T) -> &String,
    conflicts: &mut Vec<String>,
) -> Result<(), MergeError> {
    for (i, new) in from.iter().enumerate() {
        let n = name(new);
        if from[..i].iter().any(|earlier| name(earlier) == n) {
            return Err(MergeError::Duplicate {
                kind,
                name: n.clone(),
            });
        }
        if let Some(old) = into.iter().find(|old| name(old) == n)
            && !same(old, new)
        {
            conflicts.push(n.clone());
        }
    }
    Ok(())
}

fn upsert<T: Serialize>(into: &mut Vec<T>, from: Vec<T>, name: impl Fn(&T) -> &String) {
    for new in from {
        match into.iter_mut().find(|old| name(old) == name(&new)) {
            Some(old) => {
                if !same(old, &new) {
                    *old = new;
                }
            }
            None => into.push(new),
        }
    }
}

/// Content equality through the serialized form (kube's types have no `PartialEq`; the
/// serialized form is what lands in the file). Anything that fails to serialize differs.
pub(crate) fn same<T: Serialize>(a: &T, b: &T) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
