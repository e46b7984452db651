//! A recording stand-in for the AWS endpoints, for the adapters' unit tests: a loopback HTTP
//! server that keeps every request (its `X-Amz-Target` and JSON body) and answers enough for the
//! adapters to go on. The tests read what was sent: which calls (`iam.rs`), and how requests are
//! cut to the service's limits (`records.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

use crate::{CachedSecrets, DynamoTable, SqsQueue};

/// The control table's name at the stand-in.
pub(crate) const CONTROL: &str = "control";
/// The records table's name at the stand-in.
pub(crate) const RECORDS: &str = "records";

/// One request: its `X-Amz-Target` (`DynamoDB_20120810.GetItem`) and JSON body.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) target: String,
    pub(crate) body: Value,
}

impl Call {
    /// The operation (`GetItem`).
    pub(crate) fn operation(&self) -> &str {
        self.target.rsplit('.').next().unwrap_or_default()
    }
}

/// What the stand-in's reads find.
#[derive(Debug, Clone)]
struct Answers {
    /// Every `Query`'s items (a JSON array).
    query_items: String,
    /// Every `GetItem`'s item (a JSON object), if it finds one.
    get_item: Option<String>,
}

/// A loopback HTTP server that records every request.
pub(crate) struct Recorder {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    answers: Arc<Mutex<Answers>>,
}

/// What the stand-in answers: enough for the adapters to go on.
fn answer(target: &str, answers: &Answers) -> String {
    match target.rsplit('.').next().unwrap_or_default() {
        "Query" => format!(
            r#"{{"Items":{},"Count":0,"ScannedCount":0}}"#,
            answers.query_items
        ),
        "GetItem" => match &answers.get_item {
            Some(item) => format!(r#"{{"Item":{item}}}"#),
            None => "{}".to_owned(),
        },
        "GetSecretValue" => r#"{"ARN":"arn:x","Name":"x","SecretString":"s3cret"}"#.to_owned(),
        "UpdateItem" => r#"{"Attributes":{"count":{"N":"1"}}}"#.to_owned(),
        "SendMessage" => {
            r#"{"MessageId":"m","MD5OfMessageBody":"d41d8cd98f00b204e9800998ecf8427e"}"#.to_owned()
        }
        _ => "{}".to_owned(),
    }
}

/// Answers every request on one connection (the SDK reuses connections).
fn serve(mut socket: std::net::TcpStream, recorded: &Mutex<Vec<Call>>, answers: &Mutex<Answers>) {
    use std::io::{Read, Write};
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match socket.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            let header = |name: &str| {
                head.lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            };
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buffer.len() < end + 4 + length {
                break;
            }
            let body = buffer[end + 4..end + 4 + length].to_vec();
            buffer.drain(..end + 4 + length);
            let target = header("x-amz-target").unwrap_or_default();
            let reply = answer(&target, &answers.lock().unwrap());
            recorded.lock().unwrap().push(Call {
                target,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: r\r\ncontent-length: {}\r\n\r\n{reply}",
                reply.len()
            );
            if socket.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }
}

impl Recorder {
    /// A stand-in whose reads find nothing; serves on a thread of its own (plain `std::net`: no
    /// runtime features needed).
    pub(crate) fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(Answers {
            query_items: "[]".into(),
            get_item: None,
        }));
        let (recorded, answering) = (calls.clone(), answers.clone());
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(socket) = socket else {
                    return;
                };
                let (recorded, answering) = (recorded.clone(), answering.clone());
                std::thread::spawn(move || serve(socket, &recorded, &answering));
            }
        });
        Self {
            url,
            calls,
            answers,
        }
    }

    /// A stand-in whose every `Query` finds `query_items` (a JSON array of items).
    pub(crate) fn finding(query_items: &str) -> Self {
        let recorder = Self::start();
        recorder.answers.lock().unwrap().query_items = query_items.to_owned();
        recorder
    }

    /// From now on, every `GetItem` finds `item` (a JSON object), or nothing.
    pub(crate) fn get_finds(&self, item: Option<String>) {
        self.answers.lock().unwrap().get_item = item;
    }

    /// The requests so far, forgotten here.
    pub(crate) fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn sdk(&self) -> aws_types::SdkConfig {
        aws_types::SdkConfig::builder()
            .http_client(crate::sdk::https_client())
            .endpoint_url(&self.url)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                Credentials::new("test", "test", None, None, "test"),
            ))
            .behavior_version(BehaviorVersion::latest())
            .build()
    }

    /// The control table.
    pub(crate) fn table(&self) -> DynamoTable {
        DynamoTable::new(aws_sdk_dynamodb::Client::new(&self.sdk()), CONTROL)
    }

    /// The records table.
    pub(crate) fn records(&self) -> DynamoTable {
        DynamoTable::new(aws_sdk_dynamodb::Client::new(&self.sdk()), RECORDS)
    }

    /// The jobs queue.
    pub(crate) fn queue(&self) -> SqsQueue {
        SqsQueue::new(
            aws_sdk_sqs::Client::new(&self.sdk()),
            format!("{}/000000000000/jobs", self.url),
        )
    }

    /// Secrets, cached for a minute.
    pub(crate) fn secrets(&self) -> CachedSecrets {
        CachedSecrets::new(
            aws_sdk_secretsmanager::Client::new(&self.sdk()),
            Duration::from_secs(60),
        )
    }
}
