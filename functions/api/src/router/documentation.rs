//! The OpenAPI document built from the operations (test builds only: the release binary serves
//! the checked-in document, which `openapi::tests` holds equal to this one).

use axum::http::Method;
use utoipa::OpenApi as _;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{Components, OpenApi};
use utoipa_axum::router::UtoipaMethodRouter;

use crate::access::Access;
use crate::state::{ControlStore, JobsQueue};

/// How to build the OpenAPI document: per operation, its utoipa entry and declared access rule.
pub struct Documentation<St> {
    pub(super) operations: Vec<(Entry<St>, Access)>,
}

/// Builds one operation's utoipa entry (`routes!(handler)`).
pub type Entry<St> = fn() -> UtoipaMethodRouter<St>;

/// The access rule one operation declares (read by the test that walks every operation).
#[derive(Debug, Clone)]
pub struct Declaration {
    /// The operation's method.
    pub method: Method,
    /// Its path, as documented (`/v1/keys/{key_id}`).
    pub path: String,
    /// Who may call it.
    pub access: Access,
    /// Whether its `#[utoipa::path]` writes a `security` of its own (it should not: the
    /// handler declares it).
    pub security_by_hand: bool,
}

impl<St> Documentation<St> {
    /// The OpenAPI document: [`crate::openapi::ApiDoc`], and every operation with its access
    /// rule as its `security` (unless its `#[utoipa::path]` writes one, which the tests refuse).
    pub fn build(&self) -> OpenApi {
        self.walk().0
    }

    /// The access rule of every operation, as documented.
    pub fn declarations(&self) -> Vec<Declaration> {
        self.walk().1
    }

    fn walk(&self) -> (OpenApi, Vec<Declaration>) {
        let mut document = crate::openapi::ApiDoc::openapi();
        let mut declared = Vec::new();
        for (entry, access) in &self.operations {
            let (schemas, paths, _) = entry();
            for (path, mut item) in paths.paths {
                for (method, operation) in operations_mut(&mut item) {
                    let security_by_hand = operation.security.is_some();
                    operation.security.get_or_insert_with(|| access.security());
                    declared.push(Declaration {
                        method,
                        path: path.clone(),
                        access: *access,
                        security_by_hand,
                    });
                }
                if let Some(known) = document.paths.paths.get_mut(&path) {
                    known.merge_operations(item);
                } else {
                    document.paths.paths.insert(path, item);
                }
            }
            document
                .components
                .get_or_insert_with(Components::new)
                .schemas
                .extend(schemas);
        }
        (document, declared)
    }
}

/// The operations of a path item, with their methods.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|op| (method, op)))
}

/// The OpenAPI document of every operation, as it is checked in.
pub fn document<S: ControlStore, Q: JobsQueue>() -> String {
    let documentation = crate::routes::api::<S, Q>().into_documentation();
    crate::openapi::render(documentation.build())
}
