//! The API reference: the OpenAPI document (`GET /v1/openapi.json`, built by [`crate::openapi`]) and a
//! human-readable page (`GET /docs`) rendered by Redoc, whose bundle ships inside the binary (gzip, as
//! vendored by `infra/local/vendor-docs.sh` from the exact npm release `infra/local/docs` pins), so the
//! page works offline and loads nothing from anywhere else.

use std::sync::LazyLock;

use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use tributary_core::ports::QueueStats;

use crate::access::Public;
use crate::problem::ApiError;
use crate::response;
use crate::router::{Api, operations};
use crate::state::{AppState, ControlStore, Document};

const DOCS_HTML: &str = include_str!("../../assets/docs.html");

/// Where the page loads Redoc from: versioned, so that it can be cached for good.
pub const REDOC_JS: &str = "/docs/redoc-2.5.4.standalone.js";

/// `redoc/bundles/redoc.standalone.js` of that release, `gzip -9n`.
const REDOC_JS_GZ: &[u8] = include_bytes!("../../assets/redoc.standalone.js.gz");

/// The page may run its own inline script (by hash) and what this origin serves, and reach nothing
/// else: Redoc's sidebar shows a logo from a CDN, which this keeps the browser from fetching.
static PAGE_POLICY: LazyLock<String> = LazyLock::new(|| {
    let scripts: Vec<String> = inline_scripts(DOCS_HTML)
        .map(|script| format!("'sha256-{}'", BASE64.encode(Sha256::digest(script))))
        .collect();
    format!(
        "default-src 'none'; script-src 'self' {}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        scripts.join(" ")
    )
});

/// The OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "Reference",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn openapi(_: Public, Document(document): Document) -> Response {
    response::raw(
        StatusCode::OK,
        "application/json",
        document.as_bytes().to_vec(),
        Some("public, max-age=300"),
    )
}

/// The API reference page, rendered from the OpenAPI document.
#[utoipa::path(get, path = "/docs", tag = "Reference",
    responses((status = 200, description = "The reference page", content_type = "text/html")))]
pub async fn page(_: Public) -> Response {
    let Ok(policy) = HeaderValue::from_str(&PAGE_POLICY) else {
        tracing::error!("the reference page's content security policy is not a header value");
        return ApiError::Internal.into_response();
    };
    let mut response = response::raw(
        StatusCode::OK,
        "text/html; charset=utf-8",
        DOCS_HTML.as_bytes().to_vec(),
        Some("public, max-age=300"),
    );
    response
        .headers_mut()
        .insert(CONTENT_SECURITY_POLICY, policy);
    response
}

/// The renderer the reference page runs: Redoc's standalone bundle.
///
/// The Redoc release in the path, which never changes: gzip-encoded when the request's
/// `Accept-Encoding` allows gzip, decompressed otherwise.
#[utoipa::path(get, path = REDOC_JS, tag = "Reference",
    responses((status = 200, description = "Redoc's standalone bundle", content_type = "text/javascript")))]
pub async fn redoc(_: Public, headers: HeaderMap) -> Response {
    let (body, encoding) = if accepts_gzip(&headers) {
        (REDOC_JS_GZ.to_vec(), Some("gzip"))
    } else {
        match gunzip::decompress(REDOC_JS_GZ) {
            Ok(body) => (body, None),
            Err(e) => {
                tracing::error!(error = e, "the embedded Redoc bundle does not decompress");
                return ApiError::Internal.into_response();
            }
        }
    };
    let mut response = response::raw(
        StatusCode::OK,
        "text/javascript; charset=utf-8",
        body,
        Some("public, max-age=31536000, immutable"),
    );
    let headers = response.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(encoding) = encoding {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

/// The reference's operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![openapi, page, redoc]
}

/// The bodies of the page's inline `<script>` elements (those without attributes).
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</script>").map(|(script, _)| script))
}

/// Whether `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`) with a non-zero weight, or else `*`
/// with one. Without the header the body goes out as it is.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let items = headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for item in items {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let weight = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok());
        let allowed = weight.is_some_and(|q| q > 0.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(allowed);
        } else if coding == "*" {
            any = Some(allowed);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// A gzip member (RFC 1952) around a DEFLATE stream (RFC 1951), decoded as zlib's `puff` does:
/// enough for the bundle (served this way only to clients that do not take gzip), with no
/// dependency. The trailer's CRC-32 and length are checked.
mod gunzip {
    /// Why a stream did not decode.
    pub type Error = &'static str;

    /// The bytes `gz` (exactly one gzip member) holds.
    pub fn decompress(gz: &[u8]) -> Result<Vec<u8>, Error> {
        const FHCRC: u8 = 2;
        const FEXTRA: u8 = 4;
        const FNAME: u8 = 8;
        const FCOMMENT: u8 = 16;
        let [0x1f, 0x8b, 8, flags, _, _, _, _, _, _, rest @ ..] = gz else {
            return Err("not a gzip member with DEFLATE data");
        };
        let mut rest = rest;
        if flags & FEXTRA != 0 {
            let [lo, hi, tail @ ..] = rest else {
                return Err("truncated header");
            };
            let len = usize::from(u16::from_le_bytes([*lo, *hi]));
            rest = tail.get(len..).ok_or("truncated header")?;
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                let end = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or("truncated header")?;
                rest = &rest[end + 1..];
            }
        }
        if flags & FHCRC != 0 {
            rest = rest.get(2..).ok_or("truncated header")?;
        }
        let mut input = Bits::new(rest);
        let mut out = Vec::new();
        inflate(&mut input, &mut out)?;
        let trailer = &rest[input.consumed()..];
        let [c0, c1, c2, c3, s0, s1, s2, s3] = trailer else {
            return Err("the trailer is missing, truncated or followed by more data");
        };
        if u32::from_le_bytes([*c0, *c1, *c2, *c3]) != crc32(&out) {
            return Err("CRC-32 mismatch");
        }
        // ISIZE is the length modulo 2^32.
        if u32::from_le_bytes([*s0, *s1, *s2, *s3]) != out.len() as u32 {
            return Err("length mismatch");
        }
        Ok(out)
    }

    /// Bits, least significant first, as DEFLATE packs them.
    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
        buf: u32,
        count: u32,
    }

    impl<'a> Bits<'a> {
        fn new(data: &'a [u8]) -> Self {
            Self {
                data,
                pos: 0,
                buf: 0,
                count: 0,
            }
        }

        /// The next `need` (at most 16) bits.
        fn take(&mut self, need: u32) -> Result<u32, Error> {
            let mut value = self.buf;
            while self.count < need {
                let byte = *self.data.get(self.pos).ok_or("truncated data")?;
                self.pos += 1;
                value |= u32::from(byte) << self.count;
                self.count += 8;
            }
            self.buf = value >> need;
            self.count -= need;
            Ok(value & ((1 << need) - 1))
        }

        /// Drops the bits left in the current byte.
        fn align(&mut self) {
            self.buf = 0;
            self.count = 0;
        }

        /// The bytes read so far (whole bytes: the stream's last byte is padded).
        fn consumed(&self) -> usize {
            self.pos
        }

        fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
            let bytes = self
                .data
                .get(self.pos..self.pos + n)
                .ok_or("truncated data")?;
            self.pos += n;
            Ok(bytes)
        }
    }

    const MAX_BITS: usize = 15;

    /// A canonical Huffman code: how many codes each length has, and the symbols in code order.
    struct Huffman {
        count: [u16; MAX_BITS + 1],
        symbol: Vec<u16>,
    }

    impl Huffman {
        /// The code for `lengths` (one per symbol, 0 = unused), and whether it is incomplete.
        fn new(lengths: &[u8]) -> Result<(Self, bool), Error> {
            let mut count = [0u16; MAX_BITS + 1];
            for &len in lengths {
                count[usize::from(len)] += 1;
            }
            let mut left: i32 = 1;
            for &n in &count[1..] {
                left = (left << 1) - i32::from(n);
                if left < 0 {
                    return Err("over-subscribed code");
                }
            }
            let mut offsets = [0u16; MAX_BITS + 1];
            for len in 1..MAX_BITS {
                offsets[len + 1] = offsets[len] + count[len];
            }
            let mut symbol = vec![0; lengths.len()];
            for (s, &len) in lengths.iter().enumerate() {
                if len != 0 {
                    let at = &mut offsets[usize::from(len)];
                    symbol[usize::from(*at)] = s as u16;
                    *at += 1;
                }
            }
            Ok((Self { count, symbol }, left > 0))
        }

        /// The next symbol in `input`.
        fn decode(&self, input: &mut Bits<'_>) -> Result<usize, Error> {
            let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
            for &n in &self.count[1..] {
                code |= input.take(1)? as i32;
                let n = i32::from(n);
                if code - n < first {
                    return Ok(usize::from(self.symbol[(index + code - first) as usize]));
                }
                index += n;
                first = (first + n) << 1;
                code <<= 1;
            }
            Err("no such code")
        }
    }

    const LENGTH_BASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LENGTH_EXTRA: [u8; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DISTANCE_BASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DISTANCE_EXTRA: [u8; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    /// The order in which a dynamic block lists the code length code's lengths.
    const CODE_LENGTH_ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];

    /// Every block of a DEFLATE stream, up to and including the last.
    fn inflate(input: &mut Bits<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
        loop {
            let last = input.take(1)? == 1;
            match input.take(2)? {
                0 => stored(input, out)?,
                1 => fixed(input, out)?,
                2 => dynamic(input, out)?,
                _ => return Err("invalid block type"),
            }
            if last {
                return Ok(());
            }
        }
    }

    fn stored(input: &mut Bits<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
        input.align();
        let header = input.bytes(4)?;
        let len = u16::from_le_bytes([header[0], header[1]]);
        if !len != u16::from_le_bytes([header[2], header[3]]) {
            return Err("stored block length does not match its complement");
        }
        out.extend_from_slice(input.bytes(usize::from(len))?);
        Ok(())
    }

    fn fixed(input: &mut Bits<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
        let mut lengths = [0u8; 288];
        lengths[..144].fill(8);
        lengths[144..256].fill(9);
        lengths[256..280].fill(7);
        lengths[280..].fill(8);
        let (literals, _) = Huffman::new(&lengths)?;
        let (distances, _) = Huffman::new(&[5; 30])?;
        codes(input, out, &literals, &distances)
    }

    fn dynamic(input: &mut Bits<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
        let nlen = input.take(5)? as usize + 257;
        let ndist = input.take(5)? as usize + 1;
        let ncode = input.take(4)? as usize + 4;
        if nlen > 286 || ndist > 30 {
            return Err("too many length or distance codes");
        }
        let mut lengths = [0u8; 286 + 30];
        for &at in &CODE_LENGTH_ORDER[..ncode] {
            lengths[at] = input.take(3)? as u8;
        }
        let (code_lengths, incomplete) = Huffman::new(&lengths[..19])?;
        if incomplete {
            return Err("incomplete code length code");
        }
        let mut index = 0;
        while index < nlen + ndist {
            let symbol = code_lengths.decode(input)?;
            if symbol < 16 {
                lengths[index] = symbol as u8;
                index += 1;
                continue;
            }
            let (len, repeat) = match symbol {
                16 if index == 0 => return Err("repeat with no previous length"),
                16 => (lengths[index - 1], 3 + input.take(2)?),
                17 => (0, 3 + input.take(3)?),
                _ => (0, 11 + input.take(7)?),
            };
            let end = index + repeat as usize;
            if end > nlen + ndist {
                return Err("too many lengths");
            }
            lengths[index..end].fill(len);
            index = end;
        }
        if lengths[256] == 0 {
            return Err("no end-of-block code");
        }
        // An incomplete code is only allowed when it is a single one-bit code (or none at all).
        let one_bit = |code: &Huffman, lengths: &[u8]| {
            usize::from(code.count[1]) == lengths.iter().filter(|l| **l != 0).count()
        };
        let (literal_lengths, distance_lengths) = lengths[..nlen + ndist].split_at(nlen);
        let (literals, incomplete) = Huffman::new(literal_lengths)?;
        if incomplete && !one_bit(&literals, literal_lengths) {
            return Err("incomplete literal/length code");
        }
        let (distances, incomplete) = Huffman::new(distance_lengths)?;
        if incomplete && !one_bit(&distances, distance_lengths) {
            return Err("incomplete distance code");
        }
        codes(input, out, &literals, &distances)
    }

    /// Literals and back-references up to the end of the block.
    fn codes(
        input: &mut Bits<'_>,
        out: &mut Vec<u8>,
        literals: &Huffman,
        distances: &Huffman,
    ) -> Result<(), Error> {
        loop {
            let symbol = literals.decode(input)?;
            match symbol {
                0..=255 => out.push(symbol as u8),
                256 => return Ok(()),
                _ => {
                    let at = symbol - 257;
                    let (Some(base), Some(extra)) = (LENGTH_BASE.get(at), LENGTH_EXTRA.get(at))
                    else {
                        return Err("invalid length symbol");
                    };
                    let len = usize::from(*base) + input.take(u32::from(*extra))? as usize;
                    let at = distances.decode(input)?;
                    let (Some(base), Some(extra)) = (DISTANCE_BASE.get(at), DISTANCE_EXTRA.get(at))
                    else {
                        return Err("invalid distance symbol");
                    };
                    let distance = usize::from(*base) + input.take(u32::from(*extra))? as usize;
                    if distance > out.len() {
                        return Err("distance too far back");
                    }
                    // The copy may overlap what it writes.
                    let from = out.len() - distance;
                    for i in 0..len {
                        out.push(out[from + i]);
                    }
                }
            }
        }
    }

    /// CRC-32 (IEEE, reflected), as gzip's trailer carries it.
    fn crc32(data: &[u8]) -> u32 {
        const TABLE: [u32; 256] = {
            let mut table = [0u32; 256];
            let mut n = 0;
            while n < 256 {
                let mut c = n as u32;
                let mut k = 0;
                while k < 8 {
                    c = if c & 1 != 0 {
                        0xedb8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                    k += 1;
                }
                table[n] = c;
                n += 1;
            }
            table
        };
        !data.iter().fold(!0u32, |c, &b| {
            TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header::CONTENT_TYPE;
    use tributary_core::ports::QueueDepth;

    use super::*;
    use crate::testing::{MemStore, Req, call, deps};

    fn accepting(encoding: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(encoding) = encoding {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(encoding).unwrap());
        }
        headers
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    fn bundle() -> String {
        String::from_utf8(gunzip::decompress(REDOC_JS_GZ).unwrap()).unwrap()
    }

    #[test]
    fn the_page_loads_the_pinned_redoc_from_its_versioned_path() {
        let pins: serde_json::Value =
            serde_json::from_str(include_str!("../../../../infra/local/docs/package.json"))
                .unwrap();
        let version = pins["dependencies"]["redoc"].as_str().unwrap();
        assert_eq!(REDOC_JS, format!("/docs/redoc-{version}.standalone.js"));
        assert!(DOCS_HTML.contains(&format!(r#"<script src="{REDOC_JS}"></script>"#)));
        assert!(DOCS_HTML.contains("Redoc.init('/v1/openapi.json'"));
        // Nothing from another origin.
        assert!(!DOCS_HTML.contains("http:") && !DOCS_HTML.contains("https:"));
    }

    #[test]
    fn the_embedded_bundle_is_redoc_s_javascript() {
        let js = bundle();
        assert!(
            js.starts_with("/*! For license information"),
            "{}",
            &js[..80]
        );
        assert!(js.contains("Redoc"));
        assert!(
            js.trim_end()
                .ends_with("//# sourceMappingURL=redoc.standalone.js.map")
        );
    }

    #[tokio::test]
    async fn the_page_may_run_its_own_script_and_reach_only_its_origin() {
        let d = deps(MemStore::default(), Ok(QueueDepth::default()));
        let res = call(&d, Req::new("GET", "/docs")).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.headers["content-type"], "text/html; charset=utf-8");
        let policy = res.headers["content-security-policy"].to_str().unwrap();
        let scripts: Vec<&str> = inline_scripts(DOCS_HTML).collect();
        assert_eq!(scripts.len(), 1, "one inline script");
        let hash = BASE64.encode(Sha256::digest(scripts[0]));
        assert!(
            policy.contains(&format!("script-src 'self' 'sha256-{hash}';")),
            "{policy}"
        );
        for directive in [
            "default-src 'none'",
            "connect-src 'self'",
            "img-src 'self' data:",
        ] {
            assert!(policy.contains(directive), "{policy}");
        }
    }

    #[tokio::test]
    async fn the_bundle_is_sent_gzip_encoded_to_whoever_accepts_gzip() {
        for accept in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, GZIP;q=0.5",
            "x-gzip",
            "*",
            "identity;q=0.5, *;q=0.1",
        ] {
            let res = redoc(Public, accepting(Some(accept))).await;
            assert_eq!(res.status(), StatusCode::OK);
            let headers = res.headers();
            assert_eq!(headers[CONTENT_ENCODING], "gzip", "{accept}");
            assert_eq!(headers[CONTENT_TYPE], "text/javascript; charset=utf-8");
            assert_eq!(headers[VARY], "accept-encoding");
            assert_eq!(body(res).await, REDOC_JS_GZ, "{accept}");
        }
        // Through the router, public and cached for good.
        let d = deps(MemStore::default(), Ok(QueueDepth::default()));
        let res = call(
            &d,
            Req::new("GET", REDOC_JS).header("accept-encoding", "gzip"),
        )
        .await;
        assert_eq!(res.status, 200);
        assert_eq!(res.headers["content-encoding"], "gzip");
        assert_eq!(
            res.headers["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            res.headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
    }

    #[tokio::test]
    async fn the_bundle_is_sent_decompressed_to_whoever_does_not_accept_gzip() {
        let js = bundle();
        for accept in [
            None,
            Some("identity"),
            Some("br, deflate"),
            Some("gzip;q=0"),
            Some("gzip;q=0.000, *"),
            Some("*;q=0"),
            Some("gzip;q=nope"),
        ] {
            let res = redoc(Public, accepting(accept)).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert!(res.headers().get(CONTENT_ENCODING).is_none(), "{accept:?}");
            assert_eq!(
                res.headers()[CONTENT_TYPE],
                "text/javascript; charset=utf-8"
            );
            assert_eq!(body(res).await, js.as_bytes(), "{accept:?}");
        }
        let d = deps(MemStore::default(), Ok(QueueDepth::default()));
        let res = call(&d, Req::new("GET", REDOC_JS)).await;
        assert_eq!(res.status, 200);
        assert!(res.headers.get("content-encoding").is_none());
        assert_eq!(
            res.headers["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(res.body.as_str(), Some(js.as_str()));
    }

    /// `gzip -9` of a short text: fixed Huffman codes, with a back-reference that overlaps itself.
    const FIXED: [u8; 30] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
        0xd7, 0x51, 0xc8, 0x40, 0xa2, 0x14, 0x01, 0xa7, 0xbb, 0xd2, 0xfe, 0x14, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn gunzip_decodes_stored_fixed_and_empty_members_with_any_header() {
        let stored = [
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x03, 0x01, 0x16, 0x00, 0xe9,
            0xff, 0x73, 0x74, 0x6f, 0x72, 0x65, 0x64, 0x2c, 0x20, 0x6e, 0x6f, 0x74, 0x20, 0x63,
            0x6f, 0x6d, 0x70, 0x72, 0x65, 0x73, 0x73, 0x65, 0x64, 0xcb, 0x32, 0x6f, 0x9f, 0x16,
            0x00, 0x00, 0x00,
        ];
        assert_eq!(
            gunzip::decompress(&stored).unwrap(),
            b"stored, not compressed"
        );
        assert_eq!(gunzip::decompress(&FIXED).unwrap(), b"hello, hello, hello!");
        let empty = [
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x03, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(gunzip::decompress(&empty).unwrap(), b"");
        // An extra field, a file name, a comment and a header CRC are skipped.
        let mut named = FIXED[..10].to_vec();
        named[3] = 2 | 4 | 8 | 16;
        named.extend_from_slice(&[3, 0, b'x', b'y', b'z']);
        named.extend_from_slice(b"a.js\0comment\0");
        named.extend_from_slice(&[0xab, 0xcd]);
        named.extend_from_slice(&FIXED[10..]);
        assert_eq!(gunzip::decompress(&named).unwrap(), b"hello, hello, hello!");
    }

    #[test]
    fn gunzip_refuses_what_is_not_exactly_one_intact_member() {
        let mut crc = FIXED;
        crc[22] ^= 1;
        let mut size = FIXED;
        size[26] ^= 1;
        let mut method = FIXED;
        method[2] = 7;
        let trailing = [&FIXED[..], &[0]].concat();
        for (what, gz) in [
            ("bad CRC", &crc[..]),
            ("bad length", &size[..]),
            ("not DEFLATE", &method[..]),
            ("trailing data", &trailing[..]),
            ("truncated trailer", &FIXED[..29]),
            ("truncated data", &FIXED[..12]),
            ("empty", &[][..]),
        ] {
            assert!(gunzip::decompress(gz).is_err(), "{what}");
        }
        let mut bundle = REDOC_JS_GZ.to_vec();
        let middle = bundle.len() / 2;
        bundle[middle] ^= 0x10;
        assert!(gunzip::decompress(&bundle).is_err());
    }
}
