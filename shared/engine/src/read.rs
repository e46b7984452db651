//! Reading a stream page by page as an async stream, with bounded memory: one page is in memory
//! at a time and nothing collects the dataset.

use futures::stream::BoxStream;
use serde_json::Value;
use url::Url;

use crate::client::{HttpClient, Response, SpecClassifier};
use crate::connection::Bound;
use crate::cursor::{CursorValue, StreamState};
use crate::error::EngineError;
use crate::page::{Record, parse_page};
use crate::resume::{ResumeNext, ResumePoint, carries_secret, strip_query_param};
use crate::selector::Selector;
use crate::spec::{
    BodyEncoding, Incremental, NextUrlSource, PageSize, Pagination, ParamLocation, StopWhen,
    Stream, SyncMode,
};
use crate::template::Template;

/// Options of one read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Stop after this many records.
    pub max_records: Option<u64>,
    /// Saved checkpoint of an incremental stream. Ignored when `resume` is set: the resume point
    /// carries the pass's lower bound and the checkpoint reached so far.
    pub state: Option<StreamState>,
    /// Continue a pass from a page's [`Page::resume`] instead of starting at the first page.
    pub resume: Option<ResumePoint>,
}

/// One page of records.
#[derive(Debug)]
pub struct Page {
    /// 1-based page number within this read.
    pub number: u64,
    /// The records.
    pub records: Vec<Record>,
    /// Whether this is the last page of the read.
    pub last: bool,
    /// The new checkpoint, set on the last page of an incremental pass that read everything.
    /// It is not advanced mid-pass: many APIs list newest first, so a cursor saved after page one
    /// would skip the older pages of an interrupted run.
    pub checkpoint: Option<StreamState>,
    /// Where the read continues after this page, for another process to pick up through
    /// [`ReadOptions::resume`]: that read yields exactly the pages an uninterrupted read would
    /// have yielded after this one, numbered on, and the same final checkpoint. `None` on the
    /// last page, and on a page after which the pass cannot be continued (the position would hold
    /// a credential, or a code connector keeps no position it can give back): a run stopped there
    /// starts the pass again from its first page.
    pub resume: Option<ResumePoint>,
}

/// Query parameters added to a request.
type QueryPairs = Vec<(String, String)>;
/// Top-level fields added to a request's JSON body.
type BodyFields = Vec<(String, Value)>;

/// Where the next request goes.
enum Next {
    /// The pass's first page.
    First,
    /// A later page.
    At(ResumeNext),
    /// The pass is over.
    Done,
}

fn malformed(resp: &Response, message: impl Into<String>) -> EngineError {
    let mut u = resp.url.clone();
    u.set_query(None);
    EngineError::Malformed {
        url: u.to_string(),
        message: message.into(),
    }
}

fn sel(spec: &str, s: &str) -> Result<Selector, EngineError> {
    Selector::parse(s).map_err(|e| EngineError::Spec {
        spec: spec.to_owned(),
        message: e.to_string(),
    })
}

/// The `{cursor}` value for this run: saved cursor minus lookback, else `start`, else the epoch.
pub fn cursor_for_run(inc: &Incremental, state: Option<&StreamState>) -> String {
    let saved = state
        .and_then(|s| s.cursor.as_deref())
        .and_then(|c| CursorValue::parse(c, inc.format))
        .map(|c| c.minus_seconds(inc.lookback_seconds));
    let start = inc
        .start
        .as_deref()
        .and_then(|s| CursorValue::parse(s, inc.format));
    saved
        .or(start)
        .unwrap_or_else(CursorValue::epoch)
        .format(inc.format)
}

fn add_size(p: Option<&PageSize>, q: &mut Vec<(String, String)>, b: &mut Vec<(String, Value)>) {
    if let Some(p) = p {
        match p.location {
            ParamLocation::Query => q.push((p.param.clone(), p.value.to_string())),
            ParamLocation::Body => b.push((p.param.clone(), Value::from(p.value))),
        }
    }
}

fn is_true(meta: &Value, path: &Option<String>) -> Option<bool> {
    let p = path.as_deref()?;
    Some(Selector::parse(p).ok().and_then(|s| s.get(meta).cloned()) == Some(Value::Bool(true)))
}

fn stop_matches(meta: &Value, stop: &Option<StopWhen>) -> bool {
    stop.as_ref().is_some_and(|s| {
        Selector::parse(&s.path)
            .ok()
            .and_then(|sel| sel.get(meta).cloned())
            .is_some_and(|v| v == s.equals)
    })
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
pub fn link_next(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then_some(target)
    })
}

/// Reads `stream` through the declarative engine; a record over `max_record` bytes fails the read.
pub fn read_declarative<'a>(
    client: &'a HttpClient,
    bound: Bound<'a>,
    stream: &'a Stream,
    opts: ReadOptions,
    max_record: usize,
) -> BoxStream<'a, Result<Page, EngineError>> {
    Box::pin(async_stream::try_stream! {
        let spec = bound.spec;
        let field = format!("streams[{}].request", stream.name);
        let pagination = spec.pagination_for(stream).cloned().unwrap_or(Pagination::None);
        let records_sel = sel(&spec.id, &stream.records)?;
        let cls = SpecClassifier::for_stream(spec, stream);

        let inc = match stream.sync {
            SyncMode::Incremental => stream.incremental.as_ref(),
            SyncMode::FullRefresh => None,
        };
        let resume = opts.resume.as_ref();
        // A continuation keeps the pass's lower bound: computing it again from a state saved since
        // would move it, and skip or repeat records.
        let cursor_text = match (resume, inc) {
            (None, i) => i.map(|i| cursor_for_run(i, opts.state.as_ref())),
            (Some(r), Some(i)) => match r.cursor.as_deref() {
                Some(c) if CursorValue::parse(c, i.format).is_some() => Some(c.to_owned()),
                _ => Err(EngineError::Resume(format!("it has no {:?} cursor for this incremental stream", i.format)))?,
            },
            (Some(r), None) if r.cursor.is_none() && r.best.is_none() => None,
            (Some(_), None) => Err(EngineError::Resume("it carries an incremental cursor but the stream is read whole".into()))?,
        };
        // The checkpoint reached: the saved one, raised by every cursor value read in the pass.
        let mut best: Option<CursorValue> = match (resume, inc) {
            (_, None) => None,
            (None, Some(i)) => opts.state.as_ref().and_then(|s| s.cursor.as_deref()).and_then(|c| CursorValue::parse(c, i.format)),
            (Some(r), Some(i)) => match r.best.as_deref() {
                None => None,
                Some(b) => match CursorValue::parse(b, i.format) {
                    Some(c) => Some(c),
                    None => Err(EngineError::Resume(format!("its checkpoint is not a {:?} cursor", i.format)))?,
                },
            },
        };
        let cursor_sel = match inc {
            Some(i) => Some(sel(&spec.id, &i.cursor_field)?),
            None => None,
        };
        let ctx = bound.context(None, cursor_text.as_deref());

        let mut base_q: Vec<(String, String)> = Vec::new();
        let mut base_b: Vec<(String, Value)> = Vec::new();
        if let Some(p) = inc.and_then(|i| i.param.as_ref()) {
            let v = Template::parse(&p.value).and_then(|t| t.render(&ctx)).map_err(|e| EngineError::Template {
                spec: spec.id.clone(),
                field: format!("streams[{}].incremental.param", stream.name),
                source: e,
            })?;
            base_q.push((p.name.clone(), v));
        }
        let (mut offset, mut page_no) = (0u64, 0u64);
        let mut first_q = base_q.clone();
        let mut first_b = base_b.clone();
        match &pagination {
            Pagination::None => {}
            Pagination::Cursor(c) => add_size(c.page_size.as_ref(), &mut first_q, &mut first_b),
            Pagination::NextUrl(n) => add_size(n.page_size.as_ref(), &mut first_q, &mut first_b),
            Pagination::LastId(l) => add_size(l.page_size.as_ref(), &mut first_q, &mut first_b),
            Pagination::Offset(o) => {
                offset = o.start;
                add_size(Some(&o.page_size), &mut first_q, &mut first_b);
                first_q.push((o.offset_param.clone(), offset.to_string()));
            }
            Pagination::PageNumber(p) => {
                page_no = p.start;
                add_size(p.page_size.as_ref(), &mut first_q, &mut first_b);
                first_q.push((p.page_param.clone(), page_no.to_string()));
            }
        }
        // Parameters repeated on every page: the page size and the incremental parameter.
        let mut size_q = base_q.clone();
        add_size(page_size_of(&pagination), &mut size_q, &mut base_b);
        let base_q = size_q;

        let auth_param = bound.auth_query_param();
        let mut next = Next::First;
        let mut number = 0u64;
        let mut emitted = 0u64;
        let mut empty_in_a_row = 0u32;
        // Once per read: a provider that echoes a credential does so on every page.
        let mut warned = false;
        if let Some(r) = resume {
            let at = resume_position(&pagination, &bound, &r.next)?;
            match at {
                ResumeNext::Offset(n) => offset = n,
                ResumeNext::Page(n) => page_no = n,
                _ => {}
            }
            next = Next::At(at);
            number = r.page;
            emitted = r.emitted;
            empty_in_a_row = r.empty_pages;
        }
        let follow_empty = match &pagination {
            Pagination::Cursor(c) => c.follow_empty_pages,
            _ => 0,
        };
        loop {
            let req = match &next {
                Next::Done => break,
                Next::First => bound.render(&field, &stream.request, &ctx, &first_q, &first_b, BodyEncoding::Json)?,
                Next::At(ResumeNext::Url(u)) => {
                    let u = Url::parse(u).map_err(|e| EngineError::Resume(format!("next URL: {e}")))?;
                    let mut r = bound.render(&field, &stream.request, &ctx, &[], &base_b, BodyEncoding::Json)?;
                    if u.origin() != bound.base_url.origin() {
                        Err(EngineError::Spec {
                            spec: spec.id.clone(),
                            message: format!("next page URL points to another origin ({}); refusing to send credentials there", u.origin().ascii_serialization()),
                        })?;
                    }
                    r.url = u;
                    r
                }
                Next::At(at) => {
                    let (q, b) = params_at(&pagination, at, &base_q, &base_b)?;
                    bound.render(&field, &stream.request, &ctx, &q, &b, BodyEncoding::Json)?
                }
            };
            // Reads are safe to repeat even when sent as POST (search endpoints).
            let mut req = req;
            req.idempotent = true;
            let resp = client.send_with(&req, &cls).await?;
            let parsed = parse_page(&resp.body, &records_sel).map_err(|e| malformed(&resp, e.to_string()))?;
            let Some(mut records) = parsed.records else {
                Err(malformed(&resp, format!("no record array at `{}`", stream.records)))?;
                break;
            };
            let meta = parsed.meta;
            number += 1;
            let count = records.len() as u64;
            if let Some(big) = records.iter().find(|r| r.len() > max_record) {
                Err(EngineError::RecordTooLarge { stream: stream.name.clone(), size: big.len(), limit: max_record })?;
            }
            if let (Some(i), Some(cs)) = (inc, &cursor_sel) {
                for r in &records {
                    let v = r.to_value().map_err(|e| malformed(&resp, e.to_string()))?;
                    if let Some(c) = cs.get(&v).and_then(|f| CursorValue::from_json(f, i.format)) {
                        best = Some(best.map_or(c, |b: CursorValue| b.max(c)));
                    }
                }
            }

            empty_in_a_row = if count == 0 { empty_in_a_row + 1 } else { 0 };
            next = if count == 0 && follow_empty == 0 {
                Next::Done
            } else {
                match &pagination {
                    Pagination::None => Next::Done,
                    Pagination::Cursor(c) => {
                        let cur = Selector::parse(&c.cursor_path).ok().and_then(|s| s.get_text(&meta));
                        match cur {
                            Some(cur) if is_true(&meta, &c.has_more_path) != Some(false) && !stop_matches(&meta, &c.stop_when) => {
                                if empty_in_a_row > follow_empty {
                                    Err(malformed(
                                        &resp,
                                        format!("{empty_in_a_row} empty pages in a row still carry a cursor (the spec follows {follow_empty}); the read stops rather than end short"),
                                    ))?;
                                }
                                Next::At(ResumeNext::Cursor(cur))
                            }
                            _ => Next::Done,
                        }
                    }
                    Pagination::NextUrl(n) if stop_matches(&meta, &n.stop_when) => Next::Done,
                    Pagination::NextUrl(n) => {
                        let raw = match &n.source {
                            NextUrlSource::LinkHeader => resp
                                .headers
                                .get_all(http::header::LINK)
                                .iter()
                                .filter_map(|v| v.to_str().ok())
                                .find_map(link_next)
                                .map(str::to_owned),
                            NextUrlSource::Body { path } => Selector::parse(path).ok().and_then(|s| s.get_text(&meta)),
                        };
                        match raw {
                            Some(r) => {
                                let mut u = bound.base_url.join(&r).map_err(|e| malformed(&resp, format!("next URL `{r}`: {e}")))?;
                                // The client adds the key to every request: a copy echoed by the
                                // provider would be sent twice, and stored with the position.
                                if let Some(name) = auth_param {
                                    strip_query_param(&mut u, name);
                                }
                                Next::At(ResumeNext::Url(u.into()))
                            }
                            None => Next::Done,
                        }
                    }
                    Pagination::Offset(o) => {
                        offset += count;
                        let total = o.total_path.as_deref().and_then(|p| Selector::parse(p).ok()).and_then(|s| s.get(&meta).and_then(Value::as_u64));
                        let explicit = o.total_path.is_some() || o.has_more_path.is_some() || o.stop_when.is_some();
                        let done = total.is_some_and(|t| offset >= t)
                            || is_true(&meta, &o.has_more_path) == Some(false)
                            || stop_matches(&meta, &o.stop_when)
                            || (!explicit && count < u64::from(o.page_size.value));
                        if done {
                            Next::Done
                        } else {
                            Next::At(ResumeNext::Offset(offset))
                        }
                    }
                    Pagination::PageNumber(p) => {
                        let total = p.total_pages_path.as_deref().and_then(|t| Selector::parse(t).ok()).and_then(|s| s.get(&meta).and_then(Value::as_u64));
                        let explicit = p.total_pages_path.is_some() || p.has_more_path.is_some() || p.stop_when.is_some();
                        let short = p.page_size.as_ref().is_some_and(|s| count < u64::from(s.value));
                        let done = total.is_some_and(|t| page_no >= t)
                            || is_true(&meta, &p.has_more_path) == Some(false)
                            || stop_matches(&meta, &p.stop_when)
                            || (!explicit && short);
                        if done {
                            Next::Done
                        } else {
                            page_no += 1;
                            Next::At(ResumeNext::Page(page_no))
                        }
                    }
                    Pagination::LastId(l) => {
                        let more = is_true(&meta, &Some(l.has_more_path.clone())) == Some(true);
                        let last_id = records.last().and_then(|r| r.to_value().ok()).and_then(|v| Selector::parse(&l.id_path).ok().and_then(|s| s.get_text(&v)));
                        match (more, last_id) {
                            (true, Some(id)) => Next::At(ResumeNext::LastId(id)),
                            (true, None) => Err(malformed(&resp, format!("last record has no `{}`", l.id_path)))?,
                            _ => Next::Done,
                        }
                    }
                }
            };

            let mut truncated = false;
            if let Some(max) = opts.max_records {
                let room = max.saturating_sub(emitted);
                if count >= room {
                    records.truncate(room as usize);
                    truncated = !(matches!(next, Next::Done) && count == room);
                    next = Next::Done;
                }
            }
            emitted += records.len() as u64;
            let last = matches!(next, Next::Done);
            let checkpoint = match (inc, last && !truncated) {
                (Some(i), true) => Some(StreamState { cursor: best.map(|c| c.format(i.format)) }),
                _ => None,
            };
            let resume = match &next {
                Next::At(at) if carries_secret(at, bound.credentials) => {
                    if !warned {
                        warned = true;
                        tracing::warn!(stream = %stream.name, page = number, "the next page's position holds a credential; the read cannot be resumed after such pages");
                    }
                    None
                }
                Next::At(at) => Some(ResumePoint {
                    cursor: cursor_text.clone(),
                    best: inc.and_then(|i| best.map(|c| c.format(i.format))),
                    empty_pages: empty_in_a_row,
                    ..ResumePoint::new(at.clone(), number, emitted)
                }),
                Next::First | Next::Done => None,
            };
            yield Page { number, records, last, checkpoint, resume };
        }
    })
}

/// Checks that a resume point's position belongs to `pagination`, and that its next URL is one the
/// read could have followed (same origin as the base URL; the auth mode's parameter is dropped,
/// since the client adds it).
fn resume_position(
    pagination: &Pagination,
    bound: &Bound<'_>,
    at: &ResumeNext,
) -> Result<ResumeNext, EngineError> {
    let fits = matches!(
        (pagination, at),
        (Pagination::Cursor(_), ResumeNext::Cursor(_))
            | (Pagination::LastId(_), ResumeNext::LastId(_))
            | (Pagination::Offset(_), ResumeNext::Offset(_))
            | (Pagination::PageNumber(_), ResumeNext::Page(_))
            | (Pagination::NextUrl(_), ResumeNext::Url(_))
    );
    if !fits {
        return Err(EngineError::Resume(
            "its position does not fit the stream's pagination".into(),
        ));
    }
    let ResumeNext::Url(raw) = at else {
        return Ok(at.clone());
    };
    let mut url = Url::parse(raw).map_err(|e| EngineError::Resume(format!("its next URL: {e}")))?;
    if url.origin() != bound.base_url.origin() {
        return Err(EngineError::Resume(format!(
            "its next URL points to another origin ({}); refusing to send credentials there",
            url.origin().ascii_serialization()
        )));
    }
    if let Some(name) = bound.auth_query_param() {
        strip_query_param(&mut url, name);
    }
    Ok(ResumeNext::Url(url.into()))
}

/// The query and body of the request at `at`: the parameters of every page plus the position.
fn params_at(
    pagination: &Pagination,
    at: &ResumeNext,
    base_q: &[(String, String)],
    base_b: &[(String, Value)],
) -> Result<(QueryPairs, BodyFields), EngineError> {
    let (mut q, mut b) = (base_q.to_vec(), base_b.to_vec());
    match (pagination, at) {
        (Pagination::Cursor(c), ResumeNext::Cursor(cur)) => match c.location {
            ParamLocation::Query => q.push((c.param.clone(), cur.clone())),
            ParamLocation::Body => b.push((c.param.clone(), Value::String(cur.clone()))),
        },
        (Pagination::LastId(l), ResumeNext::LastId(id)) => q.push((l.param.clone(), id.clone())),
        (Pagination::Offset(o), ResumeNext::Offset(n)) => {
            q.push((o.offset_param.clone(), n.to_string()));
        }
        (Pagination::PageNumber(p), ResumeNext::Page(n)) => {
            q.push((p.page_param.clone(), n.to_string()));
        }
        // Positions are checked against the pagination when a read resumes.
        _ => {
            return Err(EngineError::Resume(
                "its position does not fit the stream's pagination".into(),
            ));
        }
    }
    Ok((q, b))
}

fn page_size_of(p: &Pagination) -> Option<&PageSize> {
    match p {
        Pagination::None => None,
        Pagination::Cursor(c) => c.page_size.as_ref(),
        Pagination::NextUrl(_) => None,
        Pagination::LastId(l) => l.page_size.as_ref(),
        Pagination::Offset(o) => Some(&o.page_size),
        Pagination::PageNumber(p) => p.page_size.as_ref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_is_found_among_relations() {
        let h = r#"<https://api.github.com/repos/a/b/issues?page=1>; rel="prev", <https://api.github.com/repos/a/b/issues?page=3>; rel="next", <https://api.github.com/repos/a/b/issues?page=9>; rel="last""#;
        assert_eq!(
            link_next(h),
            Some("https://api.github.com/repos/a/b/issues?page=3")
        );
        assert_eq!(link_next(r#"<https://x/?page=1>; rel="first""#), None);
    }
}
