//! The HTTP transport under the signed client: one request out, its answer
//! (status, headers, body) or what its failure proves.
//!
//! Two ways, chosen once per client by the exchange's URL:
//! - **direct** (the usual case): hyper-util's pooled HTTP/1 client over
//!   rustls (ring, Mozilla's roots), the same client reqwest drives, set up
//!   as hqx set reqwest up (no redirects, TCP_NODELAY and keepalive, idle
//!   connections kept 90 s), without reqwest's per-request layers (its URL
//!   parsed twice more, the redirect, retry and proxy layers): those cost
//!   about 7 µs of CPU per request, a quarter of a request's whole cost on
//!   loopback (see BENCHMARKS.md);
//! - **through a proxy**: when the environment names one for that URL
//!   (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, read by the
//!   rules reqwest uses), reqwest, which speaks to proxies.
//!
//! Either way a failure is classified by what it proves, as before: only a
//! failure to connect (refused, DNS, TLS handshake, connect timeout) proves
//! the request never left. hyper-util's pool resends a request by itself
//! only when its connection closed before the request was written.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, HOST, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::client::SendError;

/// A request's answer: status, headers and the whole body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// How a request failed.
pub(crate) enum Failed {
    /// No answer (or provably not sent): see [`SendError`].
    Send(SendError),
    /// The status came but the body was cut.
    BodyCut { status: u16, why: String },
}

type Direct = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

enum Way {
    Direct(Direct),
    Proxied(reqwest::Client),
}

/// The transport of one client.
pub(crate) struct Transport {
    way: Way,
    user_agent: HeaderValue,
    /// The base URL's scheme and authority, and the `Host` header for
    /// them, made once: hyper-util writes the same value into every request
    /// that has none, formatting it each time (about 1 % of a placement's
    /// CPU).
    host: Option<(Option<String>, String, HeaderValue)>,
}

/// How long an idle connection is kept (reqwest's default, kept).
const POOL_IDLE: Duration = Duration::from_secs(90);
/// TCP keepalive (reqwest's defaults, kept).
const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 3;
/// Unacknowledged data gives up the connection after this (Linux).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

impl Transport {
    /// A transport for requests to `base_url`: connections made within
    /// `connect_timeout`, at most `idle_per_host` kept idle.
    pub(crate) fn new(
        base_url: &str,
        connect_timeout: Duration,
        idle_per_host: usize,
        user_agent: &'static str,
    ) -> Result<Transport, String> {
        let user_agent = HeaderValue::from_static(user_agent);
        let base = base_url.parse::<Uri>().ok();
        let proxied = base.as_ref().is_some_and(proxy_for);
        let host = base.as_ref().and_then(|u| {
            Some((
                u.scheme_str().map(str::to_string),
                u.authority()?.as_str().to_string(),
                host_header(u)?,
            ))
        });
        let way = if proxied {
            tracing::info!("requests to {base_url} go through the proxy the environment names");
            Way::Proxied(
                reqwest::Client::builder()
                    .connect_timeout(connect_timeout)
                    .pool_max_idle_per_host(idle_per_host)
                    // A redirect would carry the signed headers to another
                    // host and turn a POST into a GET: take a 3xx as an
                    // answer instead.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
            )
        } else {
            let mut tcp = HttpConnector::new();
            tcp.enforce_http(false);
            tcp.set_nodelay(true);
            tcp.set_connect_timeout(Some(connect_timeout));
            tcp.set_keepalive(Some(KEEPALIVE));
            tcp.set_keepalive_interval(Some(KEEPALIVE));
            tcp.set_keepalive_retries(Some(KEEPALIVE_RETRIES));
            #[cfg(target_os = "linux")]
            tcp.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
            let tls = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
                .map_err(|e| format!("cannot set up TLS: {e}"))?
                .https_or_http()
                .enable_http1()
                .wrap_connector(tcp);
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_timer(hyper_util::rt::TokioTimer::new())
                    .timer(hyper_util::rt::TokioTimer::new())
                    .pool_idle_timeout(POOL_IDLE)
                    .pool_max_idle_per_host(idle_per_host)
                    .build(tls);
            Way::Direct(client)
        };
        Ok(Transport {
            way,
            user_agent,
            host,
        })
    }

    /// Send `method url` with `headers` (Accept and User-Agent are added)
    /// and `body`; give up on the answer (status and whole body) after
    /// `timeout`.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &reqwest::Url,
        mut headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, Failed> {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(USER_AGENT, self.user_agent.clone());
        match &self.way {
            Way::Direct(client) => {
                // A parsed URL is a valid URI: this is how reqwest turns one
                // into the other.
                let uri = Uri::try_from(url.as_str()).map_err(|e| {
                    Failed::Send(SendError::NotSent(format!("request failed: {e}")))
                })?;
                if let Some((scheme, authority, value)) = &self.host {
                    if uri.scheme_str() == scheme.as_deref()
                        && uri.authority().map(|a| a.as_str()) == Some(authority.as_str())
                    {
                        headers.insert(HOST, value.clone());
                    }
                }
                let mut req = Request::new(Full::new(body));
                *req.method_mut() = method;
                *req.uri_mut() = uri;
                *req.headers_mut() = headers;
                // One deadline for the status and the whole body: a body
                // still coming when it passes is a body cut.
                let deadline = tokio::time::Instant::now() + timeout;
                let timed_out = || "timed out: operation timed out".to_string();
                let resp = match tokio::time::timeout_at(deadline, client.request(req)).await {
                    Err(_) => return Err(Failed::Send(SendError::NoAnswer(timed_out()))),
                    Ok(Err(e)) if is_connect(&e) => {
                        return Err(Failed::Send(SendError::NotSent(describe(
                            "cannot connect",
                            &e,
                        ))))
                    }
                    Ok(Err(e)) => {
                        return Err(Failed::Send(SendError::NoAnswer(describe(
                            "request failed",
                            &e,
                        ))))
                    }
                    Ok(Ok(resp)) => resp,
                };
                let (parts, incoming) = resp.into_parts();
                let status = parts.status.as_u16();
                match tokio::time::timeout_at(deadline, incoming.collect()).await {
                    Ok(Ok(b)) => Ok(Answer {
                        status,
                        headers: parts.headers,
                        body: b.to_bytes(),
                    }),
                    Ok(Err(e)) => Err(Failed::BodyCut {
                        status,
                        why: describe("request failed", &e),
                    }),
                    Err(_) => Err(Failed::BodyCut {
                        status,
                        why: timed_out(),
                    }),
                }
            }
            Way::Proxied(client) => {
                let resp = client
                    .request(method, url.clone())
                    .headers(headers)
                    .timeout(timeout)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| Failed::Send(classify(&e)))?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                match resp.bytes().await {
                    Ok(body) => Ok(Answer {
                        status,
                        headers,
                        body,
                    }),
                    Err(e) => Err(Failed::BodyCut {
                        status,
                        why: describe_reqwest(&e),
                    }),
                }
            }
        }
    }
}

/// The `Host` header hyper-util writes for a request to `uri`: the host,
/// and the port unless it is the scheme's default (hyper-util's
/// `try_send_request` and `get_non_default_port`).
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let secure = matches!(uri.scheme_str(), Some("https" | "wss"));
    let value = match uri.port() {
        Some(p) if !matches!((p.as_u16(), secure), (443, true) | (80, false)) => {
            format!("{host}:{p}")
        }
        _ => host.to_string(),
    };
    HeaderValue::from_str(&value).ok()
}

/// Whether the environment names a proxy for `uri` (reqwest's rules).
fn proxy_for(uri: &Uri) -> bool {
    hyper_util::client::proxy::matcher::Matcher::from_system()
        .intercept(uri)
        .is_some()
}

/// Whether an error, or one of its causes, is hyper-util's failure to
/// connect (which is what reqwest's `is_connect` asks).
fn is_connect(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(h) = c.downcast_ref::<hyper_util::client::legacy::Error>() {
            if h.is_connect() {
                return true;
            }
        }
        cur = c.source();
    }
    false
}

/// `what`, then the chain of causes of `e`.
fn describe(what: &str, e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = what.to_string();
    let mut cur = Some(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A reqwest error's own words, without its URL.
fn reqwest_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    }
}

/// A reqwest error's kind and its causes (its own text names the URL).
fn describe_reqwest(e: &reqwest::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => describe(reqwest_kind(e), s),
        None => reqwest_kind(e).to_string(),
    }
}

/// What a reqwest error proves (the proxied way).
fn classify(e: &reqwest::Error) -> SendError {
    let why = describe_reqwest(e);
    if e.is_connect() || e.is_builder() {
        SendError::NotSent(why)
    } else {
        SendError::NoAnswer(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_host_header_leaves_out_only_the_scheme_s_default_port() {
        let host = |u: &str| host_header(&u.parse::<Uri>().unwrap()).unwrap();
        assert_eq!(host("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(host("https://api.example.com"), "api.example.com");
        assert_eq!(host("https://api.example.com:443/v1"), "api.example.com");
        assert_eq!(host("http://api.example.com:80"), "api.example.com");
        assert_eq!(host("http://api.example.com:443"), "api.example.com:443");
        assert_eq!(host("https://api.example.com:80"), "api.example.com:80");
        assert_eq!(host("http://[::1]:9000"), "[::1]:9000");
    }

    /// Answer `n` requests on `listener` and return the `Host` line of each.
    async fn host_lines(listener: tokio::net::TcpListener, n: usize) -> Vec<String> {
        let mut hosts = Vec::new();
        while hosts.len() < n {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let k = sock.read(&mut buf).await.unwrap();
                assert!(k > 0, "the request ended early");
                head.extend_from_slice(&buf[..k]);
            }
            let head = String::from_utf8(head).unwrap();
            let found: Vec<&str> = head
                .lines()
                .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
                .collect();
            assert_eq!(found.len(), 1, "{head}");
            hosts.push(found[0].to_string());
            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
        }
        hosts
    }

    /// The `Host` hqx writes is the one hyper-util writes by itself.
    #[tokio::test]
    async fn the_host_header_is_the_one_hyper_util_would_write() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(host_lines(listener, 4));
        for base in [
            format!("http://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
        ] {
            let url = reqwest::Url::parse(&format!("{base}/api/v1/orders")).unwrap();
            let t = Transport::new(&base, Duration::from_secs(5), 1, "hqx-test").unwrap();
            assert!(t.host.is_some());
            let a = t
                .send(
                    Method::GET,
                    &url,
                    HeaderMap::new(),
                    Bytes::new(),
                    Duration::from_secs(5),
                )
                .await;
            assert!(matches!(a, Ok(Answer { status: 200, .. })));
            let plain: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>> =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build(HttpConnector::new());
            let req = Request::get(url.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap();
            assert_eq!(plain.request(req).await.unwrap().status(), 200);
        }
        let hosts = server.await.unwrap();
        assert_eq!(hosts[0], format!("host: 127.0.0.1:{port}"));
        assert_eq!(hosts[0], hosts[1]);
        assert_eq!(hosts[2], format!("host: localhost:{port}"));
        assert_eq!(hosts[2], hosts[3]);
    }
}
