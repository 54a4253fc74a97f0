//! `multi-eni manager --once`: one pass for debugging on a node, with a table of what was
//! (or, with `--dry-run`, would be) changed.

use std::fmt::Write as _;

use kube::Client;
use kube::api::Api;

use crate::api::ENINode;
use crate::manager::desired::desired;
use crate::manager::links::Links;
use crate::manager::outcome::Outcome;
use crate::manager::report::reports;
use crate::manager::status::StatusWriter;
use crate::manager::{AgentConfig, AgentError, plugin};

/// What one pass found and did.
pub struct Pass {
    pub outcomes: Vec<Outcome>,
    /// What changed (or, in a dry run, would change) in the CNI configuration directory.
    pub network_changes: Vec<String>,
    /// Status writes or the device plugin restart that failed (the pass itself went on).
    pub errors: Vec<String>,
}

impl Pass {
    /// Whether every served entry is configured and nothing failed.
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty()
            && self
                .outcomes
                .iter()
                .all(|outcome| outcome.problem.is_none())
    }
}

/// Serves this node's entries once; unless `dry_run`, writes the status and restarts the
/// device plugin if its config changed.
pub async fn once(
    client: Client,
    links: impl Links,
    config: &AgentConfig,
    dry_run: bool,
) -> Result<Pass, AgentError> {
    let api: Api<ENINode> = Api::all(client.clone());
    let eninode = api
        .get_opt(&config.node_name)
        .await
        .map_err(AgentError::Read)?;
    let desired = desired(eninode.as_ref());
    let mut executor = config.executor(links, dry_run)?;
    let outcomes = executor.pass(&desired).await?;
    let mut errors = Vec::new();
    let (networks, written) = executor.sync_networks(&desired, |key| {
        outcomes.iter().find(|outcome| outcome.key == *key)
    });
    let network_changes = written.unwrap_or_else(|error| {
        errors.push(error.to_string());
        Vec::new()
    });
    let plugin_changed = executor.sync_plugin_config().unwrap_or_else(|error| {
        errors.push(error.to_string());
        false
    });
    if !dry_run {
        if let (true, Some(pods)) = (plugin_changed, &config.plugin)
            && let Err(error) = plugin::restart(client.clone(), pods, &config.node_name).await
        {
            errors.push(error.to_string());
        }
        let reports = reports(&desired, &outcomes, &networks);
        let mut writer = StatusWriter::new(client, &config.node_name, config.metrics.clone());
        if let Err(error) = writer.write(eninode.as_ref(), &reports).await {
            errors.push(error.to_string());
        }
    }
    Ok(Pass {
        outcomes,
        network_changes,
        errors,
    })
}

/// The pass as a table: one row per entry, then the reasons of those not configured.
pub fn table(pass: &Pass, dry_run: bool) -> String {
    let changes = if dry_run { "WOULD CHANGE" } else { "CHANGED" };
    let mut rows = vec![[
        "NODEENI".to_string(),
        "SUBNET".into(),
        "ENI".into(),
        "MAC".into(),
        "INTERFACE".into(),
        "STATE".into(),
        changes.into(),
    ]];
    for outcome in &pass.outcomes {
        let mac = outcome.mac.map(|mac| mac.to_string());
        rows.push([
            outcome.key.nodeeni.clone(),
            outcome.key.subnet_id.clone(),
            outcome.eni_id.clone().unwrap_or_else(|| "-".into()),
            mac.unwrap_or_else(|| "-".into()),
            outcome.interface.clone().unwrap_or_else(|| "-".into()),
            state(outcome, dry_run),
            if outcome.changes.is_empty() {
                "-".into()
            } else {
                outcome.changes.join(", ")
            },
        ]);
    }
    let mut text = String::new();
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        let _ = writeln!(text, "{}", cells.join("  ").trim_end());
    }
    if pass.outcomes.is_empty() {
        text.push_str("(no ENI is attached to this node)\n");
    }
    for outcome in &pass.outcomes {
        if let Some(problem) = &outcome.problem {
            let _ = writeln!(
                text,
                "{} {}: {}",
                outcome.key.nodeeni, outcome.key.subnet_id, problem.message
            );
        }
    }
    for change in &pass.network_changes {
        let _ = writeln!(text, "pod network: {change}");
    }
    for error in &pass.errors {
        let _ = writeln!(text, "error: {error}");
    }
    text
}

fn state(outcome: &Outcome, dry_run: bool) -> String {
    let bound = outcome.dpdk.as_ref().filter(|dpdk| dpdk.bound);
    if let Some(problem) = &outcome.problem {
        format!("not configured ({})", problem.label)
    } else if dry_run && !outcome.changes.is_empty() {
        "not configured yet".into()
    } else if !outcome.serving {
        "released".into()
    } else if let Some(dpdk) = bound {
        format!("bound to {}", dpdk.driver)
    } else if outcome.resource.as_ref().is_some_and(|r| r.taken) {
        "taken by a pod".into()
    } else {
        "configured".into()
    }
}
