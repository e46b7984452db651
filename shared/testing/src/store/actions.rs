//! [`MemStore`]'s action runs and action events, with the adapter's semantics: a conditional
//! create, version-checked updates that write the completion event with the run, tenant scoping.

use std::collections::BTreeMap;

use tributary_core::PortError;
use tributary_core::action::{ActionEvent, ActionRun};
use tributary_core::ids::{ActionRunId, TenantId};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::ActionStore;

use super::{Access, MemStore, conflict, page};

pub(super) const ACTION_RUN_SK: &str = "ACTIONRUN#";
const ACTION_EVENT_SK: &str = "ACTIONEVENT#";

/// The items of action runs.
#[derive(Debug, Default)]
pub(super) struct ActionTables {
    runs: BTreeMap<String, ActionRun>,
    events: BTreeMap<String, ActionEvent>,
}

impl ActionTables {
    /// The ids of the tenant's runs (for its purge).
    pub(super) fn ids_of(&self, tenant: &TenantId) -> Vec<String> {
        self.runs
            .values()
            .filter(|r| r.tenant_id == *tenant)
            .map(|r| r.id.to_string())
            .collect()
    }

    /// Every action event.
    pub(super) fn events(&self) -> impl Iterator<Item = &ActionEvent> {
        self.events.values()
    }

    pub(super) fn remove(&mut self, id: &str) {
        self.runs.remove(id);
    }
}

impl ActionStore for MemStore {
    async fn create_action_run(&self, run: &ActionRun) -> Result<(), PortError> {
        self.port("create_action_run", Access::Write, "PutItem", |t| {
            if t.actions.runs.contains_key(run.id.as_str()) {
                return Err(conflict("PutItem"));
            }
            t.actions.runs.insert(run.id.to_string(), run.clone());
            Ok(())
        })
        .await?
    }

    async fn get_action_run(
        &self,
        tenant: &TenantId,
        id: &ActionRunId,
    ) -> Result<Option<ActionRun>, PortError> {
        self.port("get_action_run", Access::Read, "GetItem", |t| {
            t.actions
                .runs
                .get(id.as_str())
                .filter(|r| r.tenant_id == *tenant)
                .cloned()
        })
        .await
    }

    async fn update_action_run(
        &self,
        run: &ActionRun,
        expected_version: u64,
        event: Option<&ActionEvent>,
    ) -> Result<bool, PortError> {
        self.port(
            "update_action_run",
            Access::Write,
            "TransactWriteItems",
            |t| match t
                .actions
                .runs
                .get_mut(run.id.as_str())
                .filter(|r| r.tenant_id == run.tenant_id)
            {
                None => Ok(false),
                Some(stored) if stored.version != expected_version => {
                    Err(conflict("TransactWriteItems"))
                }
                Some(stored) => {
                    *stored = run.clone();
                    if let Some(e) = event {
                        t.actions.events.insert(e.id.to_string(), e.clone());
                    }
                    Ok(true)
                }
            },
        )
        .await?
    }

    async fn list_action_events(
        &self,
        tenant: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<ActionEvent>, PortError> {
        self.port("list_action_events", Access::Read, "Query", |t| {
            let mine = t
                .actions
                .events
                .iter()
                .filter(|(_, e)| e.tenant_id == *tenant)
                .map(|(id, e)| (format!("{ACTION_EVENT_SK}{id}"), e.clone()))
                .collect();
            page(mine, ACTION_EVENT_SK, req)
        })
        .await?
    }
}
