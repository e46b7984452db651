//! Integrations in the control table: `TENANT#<tenant id>` / `INTEGRATION#<integration id>`, the
//! record as JSON in `doc` beside a `version` attribute that every update checks. Each change is
//! one transaction with its audit event. Under the tenant's partition, so a tenant's deletion
//! removes them with the rest of what it owns.
//!
//! A pointer `INTEGRATIONROUTE#<integration id>` / `INTEGRATIONROUTE` holds the integration's
//! `tenant_id`, for the public webhook route, whose URL names only the integration. It is written
//! in the integration's creation (and, for an integration made before pointers existed, its next
//! update) and removed in its deletion's transaction, and by the tenant's purge.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ids::{IntegrationId, TenantId};
use tributary_core::integration::Integration;
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::IntegrationStore;
use tributary_core::tenancy::AuditEvent;

use crate::dynamo::{DynamoTable, Item, PK, SK};
use crate::tenancy::{VERSION, audit_item, delete, item, n, put, rejected, s, tenant_pk};

const SK_PREFIX: &str = "INTEGRATION#";
/// The partition prefix (and sort key) of the tenant pointer.
pub(crate) const ROUTE: &str = "INTEGRATIONROUTE";
const TENANT_ATTRIBUTE: &str = "tenant_id";

fn sk(id: &IntegrationId) -> String {
    format!("{SK_PREFIX}{id}")
}

pub(crate) fn route_pk(id: &IntegrationId) -> String {
    format!("{ROUTE}#{id}")
}

fn route_item(integration: &Integration) -> Item {
    Item::from([
        (PK.to_owned(), s(route_pk(&integration.id))),
        (SK.to_owned(), s(ROUTE)),
        (
            TENANT_ATTRIBUTE.to_owned(),
            s(integration.tenant_id.as_str()),
        ),
    ])
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
            put(
                self.name(),
                route_item(integration),
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
            put(self.name(), route_item(integration), None)?,
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
            delete(self.name(), route_pk(id), ROUTE.to_owned())?,
            put(self.name(), audit_item(audit)?, None)?,
        ];
        Ok(self.transact_checked(items).await?.is_ok())
    }

    async fn integration_tenant(&self, id: &IntegrationId) -> Result<Option<TenantId>, PortError> {
        let Some(found) = self.get(&route_pk(id), ROUTE).await? else {
            return Ok(None);
        };
        match found.get(TENANT_ATTRIBUTE) {
            Some(AttributeValue::S(t)) => t.parse().map(Some).map_err(|_| PortError::Corrupt {
                service: Service::Store,
                operation: "GetItem",
                detail: "an integration's tenant pointer holds no tenant id".into(),
            }),
            _ => Err(PortError::Corrupt {
                service: Service::Store,
                operation: "GetItem",
                detail: "an integration's tenant pointer holds no tenant id".into(),
            }),
        }
    }
}
