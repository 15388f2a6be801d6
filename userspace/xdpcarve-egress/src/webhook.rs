//! The webhook sink: POSTs batches of submissions as JSON, with an `Authorization` header, and
//! retries with exponential backoff and jitter on connection errors, timeouts, 5xx and 429
//! (honouring `Retry-After`). Other 4xx are final: the batch is logged and counted as failed.

use crate::config::{WebhookConfig, WebhookFormat};
use crate::metrics::MetricsHub;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use xdpcarve_contract::{FileRecord, Proto, ScanStatus, ToolVerdict, Verdict};

/// Environment variable read for the `Authorization` value when no token file is given.
pub const TOKEN_ENV: &str = "XDPCARVE_WEBHOOK_TOKEN";

/// One submitted file, as the receiver sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubmissionItem {
    pub sensor: String,
    pub ts: String,
    pub fuid: String,
    pub uid: String,
    pub proto: Proto,
    pub orig_h: String,
    pub orig_p: u16,
    pub resp_h: String,
    pub resp_p: u16,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub md5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blake3: Option<String>,
    pub size: u64,
    pub mime_type: Option<String>,
    pub declared_mime_type: Option<String>,
    pub filename: Option<String>,
    /// With `webhook.include_verdicts`: how the scan went and what the scanners said.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scan: Option<ScanStatus>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub verdicts: Vec<ToolVerdict>,
    /// With `fleet.redis`: where the fleet has seen this file (this sighting included).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sightings: Option<crate::fleet::Sightings>,
    /// With `fleet.redis`: `fleet` when Redis gave this sensor the claim, `local` when Redis was
    /// down and the sensor decided alone (another sensor may submit the same file).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dedup_scope: Option<String>,
}

impl SubmissionItem {
    pub fn from_record(sensor: &str, r: &FileRecord) -> SubmissionItem {
        SubmissionItem {
            sensor: sensor.to_string(),
            ts: r.ts.clone(),
            fuid: r.fuid.clone(),
            uid: r.uid.clone(),
            proto: r.proto.clone(),
            orig_h: r.orig_h.clone(),
            orig_p: r.orig_p,
            resp_h: r.resp_h.clone(),
            resp_p: r.resp_p,
            md5: r.md5.clone(),
            sha1: r.sha1.clone(),
            sha256: r.sha256.clone(),
            blake3: r.blake3.clone(),
            size: r.size,
            mime_type: r.mime_type.clone(),
            declared_mime_type: r.declared_mime_type.clone(),
            filename: r.filename.clone(),
            scan: None,
            verdict: None,
            verdicts: Vec::new(),
            sightings: None,
            dedup_scope: None,
        }
    }

    /// The item with the record's scan outcome (`webhook.include_verdicts`).
    pub fn with_verdicts(mut self, r: &FileRecord) -> SubmissionItem {
        self.scan = r.scan.scan;
        self.verdict = r.scan.verdict;
        self.verdicts = r.scan.verdicts.clone();
        self
    }
}

/// The `Authorization` value: from `token_file` (content verbatim, one trailing newline removed)
/// or the environment. Never printed: `Debug` shows only whether there is one.
#[derive(Clone)]
pub struct AuthToken(HeaderValue);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

/// Where the token came from, for messages (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenOrigin {
    File(PathBuf),
    Env,
}

impl std::fmt::Display for TokenOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenOrigin::File(p) => write!(f, "webhook.token_file {}", p.display()),
            TokenOrigin::Env => write!(f, "environment variable {TOKEN_ENV}"),
        }
    }
}

/// The webhook token cannot be used. The messages never hold the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read webhook.token_file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: empty token")]
    Empty(TokenOrigin),
    #[error("{0}: the token holds characters an HTTP header cannot carry (newlines, control bytes)")]
    NotAHeaderValue(TokenOrigin),
}

impl AuthToken {
    pub fn load(token_file: Option<&Path>) -> Result<Option<AuthToken>, TokenError> {
        let (raw, origin) = match token_file {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| TokenError::Read {
                    path: p.to_path_buf(),
                    source,
                })?,
                TokenOrigin::File(p.to_path_buf()),
            ),
            None => match std::env::var(TOKEN_ENV) {
                Ok(v) => (v, TokenOrigin::Env),
                Err(_) => return Ok(None),
            },
        };
        let value = raw
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&raw);
        if value.is_empty() {
            return Err(TokenError::Empty(origin));
        }
        // `InvalidHeaderValue` says no more than the message does, so it is not kept as a source.
        let mut hv = HeaderValue::from_str(value).map_err(|_| TokenError::NotAHeaderValue(origin))?;
        hv.set_sensitive(true);
        Ok(Some(AuthToken(hv)))
    }
}

/// The webhook client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook.url `{url}`: not a valid URL")]
    Url {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
}

/// Longest wait between two tries while the receiver refuses the token (401/403).
pub const UNAUTHORIZED_MAX_DELAY: Duration = Duration::from_secs(300);

/// What became of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// The receiver refused it for good, with its answer (the items are counted as failed and
    /// go to the dead-letter file).
    Rejected(StatusCode, String),
    /// Shutdown came first; the batch stays queued.
    Aborted,
}

enum Attempt {
    Ok,
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// 401/403: the token is wrong, not the batch. Retried (an operator fixes the token), never
    /// taken for a delivery nor a rejection.
    Unauthorized(StatusCode, String),
    Reject(StatusCode, String),
}

pub struct Webhook {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    url_for_logs: String,
    auth: Option<AuthToken>,
    pub format: WebhookFormat,
    timeout: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    hub: Arc<MetricsHub>,
}

impl Webhook {
    pub fn new(
        cfg: &WebhookConfig,
        auth: Option<AuthToken>,
        hub: Arc<MetricsHub>,
    ) -> Result<Option<Webhook>, WebhookError> {
        let Some(url) = &cfg.url else { return Ok(None) };
        let uri: Uri = url.parse().map_err(|source| WebhookError::Url {
            url: url.clone(),
            source,
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        // Small requests: without this, Nagle plus the receiver's delayed ACK stall each one ~40 ms.
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.request_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(https);
        // Query strings may carry keys: log scheme, host and path only.
        let url_for_logs = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map(|a| a.as_str()).unwrap_or(""),
            uri.path()
        );
        Ok(Some(Webhook {
            client,
            uri,
            url_for_logs,
            auth,
            format: cfg.format,
            timeout: cfg.request_timeout,
            retry_initial: cfg.retry_initial_delay,
            retry_max: cfg.retry_max_delay,
            hub,
        }))
    }

    /// Delivers one batch (a JSON array of [`SubmissionItem`]s), retrying until it is delivered,
    /// refused, or `stop` turns true.
    pub async fn deliver(&self, body: &Bytes, items: u32, stop: &mut watch::Receiver<bool>) -> Delivery {
        let started = Instant::now();
        let result = match self.format {
            WebhookFormat::Batch => self.post_with_retries(body.clone(), stop).await,
            WebhookFormat::Md5 => {
                let parsed: Vec<SubmissionItem> = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!("webhook: a queued batch does not parse ({e}); dead-lettered");
                        return Delivery::Rejected(StatusCode::UNPROCESSABLE_ENTITY, format!("unparsable batch: {e}"));
                    }
                };
                let mut outcome = Delivery::Delivered;
                for item in parsed {
                    let Some(md5) = item.md5 else { continue };
                    let one = Bytes::from(serde_json::json!({ "md5": md5 }).to_string());
                    match self.post_with_retries(one, stop).await {
                        Delivery::Delivered => {}
                        Delivery::Rejected(s, text) => outcome = Delivery::Rejected(s, text),
                        Delivery::Aborted => return Delivery::Aborted,
                    }
                }
                outcome
            }
        };
        if result == Delivery::Delivered {
            self.hub.egress.batch_items.observe(items as f64);
            self.hub
                .egress
                .delivery_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    async fn post_with_retries(&self, body: Bytes, stop: &mut watch::Receiver<bool>) -> Delivery {
        let mut failures: u32 = 0;
        let mut unauthorized = false;
        loop {
            if *stop.borrow() {
                return Delivery::Aborted;
            }
            let attempt = tokio::select! {
                a = self.post_once(body.clone()) => a,
                _ = stop.changed() => return Delivery::Aborted,
            };
            let (after, why) = match attempt {
                Attempt::Ok => {
                    self.hub.egress.requests.with_label_values(&["ok"]).inc();
                    self.hub.egress.unauthorized.set(0);
                    return Delivery::Delivered;
                }
                Attempt::Reject(status, text) => {
                    self.hub.egress.requests.with_label_values(&["rejected"]).inc();
                    self.hub.egress.unauthorized.set(0);
                    tracing::error!(
                        "webhook {}: refused with {status} (not retried; the batch goes to the dead-letter file): {}",
                        self.url_for_logs,
                        text.trim()
                    );
                    return Delivery::Rejected(status, text);
                }
                Attempt::Unauthorized(status, text) => {
                    self.hub.egress.requests.with_label_values(&["unauthorized"]).inc();
                    self.hub.egress.unauthorized.set(1);
                    if failures == 0 || (failures + 1).is_power_of_two() {
                        tracing::error!(
                            "webhook {}: refused the token with {status} ({}): check webhook.token_file or {TOKEN_ENV}; \
                             submissions stay queued and are retried",
                            self.url_for_logs,
                            text.trim()
                        );
                    }
                    unauthorized = true;
                    (None, format!("answered {status}"))
                }
                Attempt::Retry { after, why } => (after, why),
            };
            self.hub.egress.requests.with_label_values(&["retryable"]).inc();
            self.hub.egress.retried.inc();
            failures += 1;
            // A bad token is not fixed in seconds: back off up to minutes.
            let cap = match unauthorized {
                true => self.retry_max.max(UNAUTHORIZED_MAX_DELAY),
                false => self.retry_max,
            };
            let delay = backoff(self.retry_initial, cap, failures, after);
            if failures == 1 || failures.is_power_of_two() {
                tracing::warn!(
                    "webhook {}: {why}; retry {failures} in {:.1}s",
                    self.url_for_logs,
                    delay.as_secs_f64()
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return Delivery::Aborted,
            }
        }
    }

    async fn post_once(&self, body: Bytes) -> Attempt {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("xdpcarve/", env!("CARGO_PKG_VERSION")));
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.0.clone());
        }
        let req = match req.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return Attempt::Reject(StatusCode::BAD_REQUEST, format!("request not built: {e}")),
        };
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| connection_error_text(&e))?;
            let status = resp.status();
            let retry_after = resp.headers().get(RETRY_AFTER).and_then(parse_retry_after);
            // Read (a bounded amount of) the body so the connection can be reused.
            let body = http_body_util::Limited::new(resp.into_body(), 64 << 10).collect().await;
            let text = body
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Ok::<_, String>((status, retry_after, text))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Attempt::Retry {
                after: None,
                why: format!("no answer within {:?}", self.timeout),
            },
            Ok(Err(why)) => Attempt::Retry { after: None, why },
            Ok(Ok((status, retry_after, text))) => {
                if status.is_success() {
                    Attempt::Ok
                } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    let mut text = text;
                    text.truncate(200);
                    Attempt::Unauthorized(status, text)
                } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    Attempt::Retry {
                        after: retry_after,
                        why: format!("answered {status}"),
                    }
                } else {
                    let mut text = text;
                    text.truncate(200);
                    Attempt::Reject(status, text)
                }
            }
        }
    }
}

fn connection_error_text(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(v: &HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Delay before retry number `failures` (1-based): exponential from `initial`, capped at `max`,
/// with "equal jitter" (half fixed, half random) so many sensors do not retry in lockstep. A
/// receiver's `Retry-After` is honoured as a lower bound (capped at 10 minutes).
pub fn backoff(initial: Duration, max: Duration, failures: u32, retry_after: Option<Duration>) -> Duration {
    let exp = initial
        .saturating_mul(1u32 << (failures.saturating_sub(1)).min(20))
        .min(max);
    let half = exp / 2;
    let jitter = Duration::from_nanos(fastrand::u64(0..=half.as_nanos().min(u64::MAX as u128) as u64));
    let d = half + jitter;
    match retry_after {
        Some(ra) => d.max(ra.min(Duration::from_secs(600))),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..50 {
            let d1 = backoff(i, m, 1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = backoff(i, m, 3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d30 = backoff(i, m, 30, None);
            assert!(d30 >= Duration::from_secs(1) && d30 <= m);
            assert!(backoff(i, m, 1, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("3")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }

    #[test]
    fn token_verbatim_minus_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "Bearer abc def\n").unwrap();
        let t = AuthToken::load(Some(&p)).unwrap().unwrap();
        assert_eq!(t.0.to_str().unwrap(), "Bearer abc def");
        assert_eq!(format!("{t:?}"), "AuthToken(<redacted>)");
        std::fs::write(&p, "a\nb\n").unwrap();
        let err = AuthToken::load(Some(&p)).unwrap_err().to_string();
        assert!(!err.contains("a\nb") && err.contains("webhook.token_file"), "{err}");
        std::fs::write(&p, "\n").unwrap();
        assert!(AuthToken::load(Some(&p)).unwrap_err().to_string().contains("empty"));
        // A missing file: the message names the key and the path, the io error is the source.
        let missing = dir.path().join("missing");
        let err = AuthToken::load(Some(&missing)).unwrap_err();
        let text = err.to_string();
        assert_eq!(text, format!("cannot read webhook.token_file {}", missing.display()));
        let source = std::error::Error::source(&err)
            .expect("the io error is kept")
            .to_string();
        assert!(source.contains("No such file"), "{source}");
    }
}
