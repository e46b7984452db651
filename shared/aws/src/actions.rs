//! Action runs and their completion events in the control table:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | action run | `TENANT#<tenant id>` | `ACTIONRUN#<run id>` |
//! | action event | `TENANT#<tenant id>` | `ACTIONEVENT#<event id>` |
//!
//! A run keeps its record as JSON in `doc` beside the `version` every update checks. An ended run
//! and an event expire after [`ACTION_RETENTION_DAYS`]; a run's completion and its event are one
//! transaction, so an event is never recorded for a write that lost, nor lost for one that won.
//! Everything is under the tenant's partition, so a tenant's deletion removes it with the rest.

use tributary_core::PortError;
use tributary_core::action::{ActionEvent, ActionRun};
use tributary_core::ids::{ActionRunId, TenantId};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::ActionStore;

use crate::dynamo::{DynamoTable, EXPIRES_AT, Item};
use crate::tenancy::{VERSION, item, n, tenant_pk};

const RUN_SK: &str = "ACTIONRUN#";
const EVENT_SK: &str = "ACTIONEVENT#";

/// How long an ended run and an action event are kept.
pub const ACTION_RETENTION_DAYS: i64 = 30;

fn sk(id: &ActionRunId) -> String {
    format!("{RUN_SK}{id}")
}

fn run_item(run: &ActionRun) -> Result<Item, PortError> {
    let mut it = item(tenant_pk(&run.tenant_id), sk(&run.id), run)?;
    it.insert(VERSION.to_owned(), n(run.version));
    if let Some(done) = run.completed_at_ms {
        it.insert(
            EXPIRES_AT.to_owned(),
            n(done / 1000 + ACTION_RETENTION_DAYS * 86_400),
        );
    }
    Ok(it)
}

fn event_item(e: &ActionEvent) -> Result<Item, PortError> {
    let mut it = item(tenant_pk(&e.tenant_id), format!("{EVENT_SK}{}", e.id), e)?;
    it.insert(
        EXPIRES_AT.to_owned(),
        n(e.at_ms / 1000 + ACTION_RETENTION_DAYS * 86_400),
    );
    crate::webhooks::with_outbox(
        &mut it,
        &e.tenant_id,
        tributary_core::action::ACTION_RUN_COMPLETED,
        e.at_ms,
    );
    Ok(it)
}

impl ActionStore for DynamoTable {
    async fn create_action_run(&self, run: &ActionRun) -> Result<(), PortError> {
        self.put_new(run_item(run)?).await
    }

    async fn get_action_run(
        &self,
        tenant: &TenantId,
        id: &ActionRunId,
    ) -> Result<Option<ActionRun>, PortError> {
        let found: Option<ActionRun> = self.get_doc(&tenant_pk(tenant), &sk(id)).await?;
        Ok(found.filter(|r| r.tenant_id == *tenant && r.id == *id))
    }

    async fn update_action_run(
        &self,
        run: &ActionRun,
        expected_version: u64,
        event: Option<&ActionEvent>,
    ) -> Result<bool, PortError> {
        let event = event.map(event_item).transpose()?;
        self.replace_versioned(run_item(run)?, expected_version, event)
            .await
    }

    async fn list_action_events(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<ActionEvent>, PortError> {
        self.query_docs(&tenant_pk(tenant), EVENT_SK, page).await
    }
}
