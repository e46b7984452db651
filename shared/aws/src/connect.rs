//! Connect sessions and OAuth flows in the control table, each found by a token's hash:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | connect session | `CONNECT#<sha256 of the link's token>` | `CONNECT` |
//! | OAuth flow | `OAUTHSTATE#<sha256 of the state>` | `OAUTHSTATE` |
//!
//! Both carry `expires_at` a day past their own expiry (DynamoDB's TTL removes them; until then the
//! connect page can still say a link expired rather than that it never existed). Completing a
//! session is a write conditioned on it not being completed; taking a flow is one `DeleteItem`
//! returning the deleted item, so exactly one caller gets it.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use tributary_core::PortError;
use tributary_core::connect::{ConnectSession, OAuthFlow};
use tributary_core::error::Service;
use tributary_core::ids::ConnectionId;
use tributary_core::ports::ConnectStore;

use crate::dynamo::{DynamoTable, EXPIRES_AT, Item, PK, SK};
use crate::errors::classify;
use crate::tenancy::{decode, item, n, s};

const SESSION_SK: &str = "CONNECT";
const FLOW_SK: &str = "OAUTHSTATE";
const COMPLETED: &str = "completed";
/// How long past its expiry an item is kept.
const KEEP_S: i64 = 86_400;

fn session_pk(token_hash: &str) -> String {
    format!("CONNECT#{token_hash}")
}

fn flow_pk(state_hash: &str) -> String {
    format!("OAUTHSTATE#{state_hash}")
}

fn session_item(session: &ConnectSession) -> Result<Item, PortError> {
    let mut it = item(session_pk(&session.token_hash), SESSION_SK.into(), session)?;
    it.insert(
        EXPIRES_AT.to_owned(),
        n(session.expires_at_ms / 1000 + KEEP_S),
    );
    if let Some(done) = &session.completed_with {
        it.insert(COMPLETED.to_owned(), s(done.as_str()));
    }
    Ok(it)
}

impl ConnectStore for DynamoTable {
    async fn create_session(&self, session: &ConnectSession) -> Result<(), PortError> {
        let created = self
            .put_conditional(session_item(session)?, "attribute_not_exists(pk)")
            .await?;
        if created {
            Ok(())
        } else {
            Err(PortError::Conflict {
                service: Service::Store,
                operation: "PutItem",
            })
        }
    }

    async fn session(&self, token_hash: &str) -> Result<Option<ConnectSession>, PortError> {
        self.get_doc(&session_pk(token_hash), SESSION_SK).await
    }

    async fn complete_session(
        &self,
        token_hash: &str,
        connection: &ConnectionId,
    ) -> Result<bool, PortError> {
        let Some(mut session) = self.session(token_hash).await? else {
            return Ok(false);
        };
        if session.completed_with.is_some() {
            return Ok(false);
        }
        session.completed_with = Some(connection.clone());
        self.put_conditional(
            session_item(&session)?,
            "attribute_exists(pk) AND attribute_not_exists(completed)",
        )
        .await
    }

    async fn put_flow(&self, flow: &OAuthFlow) -> Result<(), PortError> {
        let mut it = item(flow_pk(&flow.state_hash), FLOW_SK.into(), flow)?;
        it.insert(EXPIRES_AT.to_owned(), n(flow.expires_at_ms / 1000 + KEEP_S));
        if self.put_conditional(it, "attribute_not_exists(pk)").await? {
            Ok(())
        } else {
            Err(PortError::Conflict {
                service: Service::Store,
                operation: "PutItem",
            })
        }
    }

    async fn take_flow(&self, state_hash: &str) -> Result<Option<OAuthFlow>, PortError> {
        let out = self
            .client()
            .delete_item()
            .table_name(self.name())
            .key(PK, AttributeValue::S(flow_pk(state_hash)))
            .key(SK, AttributeValue::S(FLOW_SK.into()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify(Service::Store, "DeleteItem", e, |_| None))?;
        match out.attributes {
            Some(old) if !old.is_empty() => Ok(Some(decode(&old, "DeleteItem")?)),
            _ => Ok(None),
        }
    }
}
