//! A lookup or sandbox service as a scanner: one POST per file, answered with a verdict JSON
//! ([`super::PrintedVerdict`]). `send = "hash"` posts `{"sha256","md5","sha1","size","mime_type",
//! "filename"}` as JSON; `send = "file"` posts the stored file's bytes (`application/octet-stream`,
//! with the hashes in `X-Xdpcarve-Sha256` / `X-Xdpcarve-Md5`). Authorization as the webhook's: a
//! token file's content sent verbatim. A non-2xx answer is an error verdict.

use super::{Answer, PrintedVerdict};
use crate::config::Send;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::time::Duration;
use xdpcarve_contract::FileRecord;

/// The longest answer read: a verdict is a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;

pub struct HttpScanner {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    send: Send,
    auth: Option<HeaderValue>,
}

impl HttpScanner {
    pub fn new(url: &str, send: Send, token_file: Option<&Path>) -> Result<HttpScanner, String> {
        let uri: Uri = url.parse().map_err(|e| format!("url `{url}` does not parse: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(format!("url `{url}`: only http:// and https:// are supported"));
        }
        let auth = match token_file {
            Some(p) => {
                let raw =
                    std::fs::read_to_string(p).map_err(|e| format!("cannot read token_file {}: {e}", p.display()))?;
                let value = raw
                    .strip_suffix('\n')
                    .map(|s| s.strip_suffix('\r').unwrap_or(s))
                    .unwrap_or(&raw);
                let mut hv = HeaderValue::from_str(value).map_err(|_| {
                    format!(
                        "token_file {}: the token holds characters an HTTP header cannot carry",
                        p.display()
                    )
                })?;
                hv.set_sensitive(true);
                Some(hv)
            }
            None => None,
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(HttpScanner {
            client,
            uri,
            send,
            auth,
        })
    }

    pub async fn scan(&self, path: &Path, rec: &FileRecord) -> Answer {
        match self.ask(path, rec).await {
            Ok(a) => a,
            Err(e) => Answer::error(e),
        }
    }

    async fn ask(&self, path: &Path, rec: &FileRecord) -> Result<Answer, String> {
        let mut req = Request::builder().method(Method::POST).uri(self.uri.clone());
        if let Some(a) = &self.auth {
            req = req.header(http::header::AUTHORIZATION, a.clone());
        }
        let body = match self.send {
            Send::Hash => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                let q = serde_json::json!({
                    "sha256": rec.sha256, "md5": rec.md5, "sha1": rec.sha1, "size": rec.size,
                    "mime_type": rec.mime_type, "filename": rec.filename,
                });
                Bytes::from(q.to_string())
            }
            Send::File => {
                req = req.header(http::header::CONTENT_TYPE, "application/octet-stream");
                for (name, value) in [("x-xdpcarve-sha256", &rec.sha256), ("x-xdpcarve-md5", &rec.md5)] {
                    if let Some(v) = value {
                        req = req.header(name, v.as_str());
                    }
                }
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Bytes::from(bytes)
            }
        };
        let req = req.body(Full::new(body)).map_err(|e| format!("request: {e}"))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{}: {e}", self.uri))?;
        let status = resp.status();
        let answer = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("{}: reading the answer: {e}", self.uri))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{} answered {status}: {}",
                self.uri,
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            ));
        }
        Ok(PrintedVerdict::parse(&answer))
    }
}
