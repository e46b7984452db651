//! Provider catalog tests: each provider's spec against a local mock that reproduces the
//! provider's documented request and response shapes, so a wrong header, cursor path or page
//! parameter in a spec fails here.

mod support;

mod airtable;
mod asana;
mod github;
mod google_drive;
mod hubspot;
mod intercom;
mod jira;
mod mailchimp;
mod notion;
mod pipedrive;
mod salesforce;
mod shopify;
mod slack;
mod stripe;
mod webhooks;
mod zendesk;
