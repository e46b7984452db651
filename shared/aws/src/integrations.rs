//! Integrations in the control table: `TENANT#<tenant id>` / `INTEGRATION#<integration id>`, the
//! record as JSON in `doc` beside a `version` attribute that every update checks. Each change is
//! one transaction with its audit event. Under the tenant's partition, so a tenant's deletion
//! removes them with the rest of what it owns.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ids::{IntegrationId, TenantId};
use tributary_core::integration::Integration;
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::IntegrationStore;
use tributary_core::tenancy::AuditEvent;

use crate::dynamo::{DynamoTable, Item, PK, SK};
use crate::tenancy::{VERSION, audit_item, item, n, put, rejected, s, tenant_pk};

const SK_PREFIX: &str = "INTEGRATION#";

fn sk(id: &IntegrationId) -> String {
    format!("{SK_PREFIX}{id}")
}

fn integration_item(integration: &Integration) -> Result<Item, PortError> {
    let mut it = item(
        tenant_pk(&integration.tenant_id),
        sk(&integration.id),
        integration,
    )?;
    it.insert(VERSION.to_owned(), n(integration.version));
    Ok(it)
}

impl IntegrationStore for DynamoTable {
    async fn create_integration(
        &self,
        integration: &Integration,
        audit: &AuditEvent,
    ) -> Result<(), PortError> {
        self.transact(vec![
            put(
                self.name(),
                integration_item(integration)?,
                Some("attribute_not_exists(pk)"),
            )?,
            put(self.name(), audit_item(audit)?, None)?,
        ])
        .await
    }

    async fn get_integration(
        &self,
        tenant: &TenantId,
        id: &IntegrationId,
    ) -> Result<Option<Integration>, PortError> {
        let found: Option<Integration> = self.get_doc(&tenant_pk(tenant), &sk(id)).await?;
        Ok(found.filter(|i| i.tenant_id == *tenant))
    }

    async fn list_integrations(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Integration>, PortError> {
        self.query_docs(&tenant_pk(tenant), SK_PREFIX, page).await
    }

    async fn update_integration(
        &self,
        integration: &Integration,
        expected_version: u64,
        audit: &AuditEvent,
    ) -> Result<bool, PortError> {
        let replace = Put::builder()
            .table_name(self.name())
            .set_item(Some(integration_item(integration)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(expected_version))
            .build()
            .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().put(replace).build(),
            put(self.name(), audit_item(audit)?, None)?,
        ];
        if self.transact_checked(items).await?.is_ok() {
            return Ok(true);
        }
        // Either it is gone or someone else changed it: a read tells which.
        match self
            .get(&tenant_pk(&integration.tenant_id), &sk(&integration.id))
            .await?
        {
            Some(_) => Err(PortError::Conflict {
                service: Service::Store,
                operation: "TransactWriteItems",
            }),
            None => Ok(false),
        }
    }

    async fn delete_integration(
        &self,
        tenant: &TenantId,
        id: &IntegrationId,
        audit: &AuditEvent,
    ) -> Result<bool, PortError> {
        let remove = Delete::builder()
            .table_name(self.name())
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(sk(id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().delete(remove).build(),
            put(self.name(), audit_item(audit)?, None)?,
        ];
        Ok(self.transact_checked(items).await?.is_ok())
    }
}
