//! How requests travel: directly (hyper-util over rustls), or through a
//! proxy the environment names (reqwest). Either way what reaches the
//! exchange is the signed order, and a failure to connect proves nothing
//! was sent.

use crate::crash::assert_exactly_once;
use crate::util::{batch_of, Env};

/// `HTTP_PROXY` names the sandbox and the exchange's own host does not
/// exist: every request goes through the proxy, which (being the sandbox)
/// takes the absolute-form request as its own.
#[test]
fn a_proxy_the_environment_names_carries_every_request() {
    let env = Env::new();
    let f = env.write("b.yaml", &batch_of("proxied", 4));
    env.run(&f)
        .arg("--yes")
        .env("HQX_BASE_URL", "http://exchange.invalid:1")
        .env("HTTP_PROXY", env.base_url())
        .assert()
        .code(0);
    assert_exactly_once(&env, 4);
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM http_log WHERE method = 'POST' AND status = 200"),
        4
    );
    // NO_PROXY takes the host back out of the proxy's hands: the host
    // does not exist, so nothing is sent.
    let g = env.write("c.yaml", &batch_of("not-proxied", 2));
    env.run(&g)
        .arg("--yes")
        .env("HQX_BASE_URL", "http://exchange.invalid:1")
        .env("HTTP_PROXY", env.base_url())
        .env("NO_PROXY", "exchange.invalid")
        .assert()
        .code(1);
    assert_eq!(env.accepted().len(), 4);
    assert_eq!(
        env.one::<i64>(
            "SELECT count(*) FROM orders WHERE batch_id = 'not-proxied' AND state = 'pending'"
        ),
        2
    );
}

/// `https://` to a server that speaks plain HTTP: the TLS handshake fails,
/// which proves the order never left. It stays `pending`, its attempts
/// are `not_sent`, and the exchange received nothing.
#[test]
fn a_failed_tls_handshake_proves_nothing_was_sent() {
    let env = Env::new();
    let f = env.write("b.yaml", &batch_of("tls", 2));
    let https = env.base_url().replacen("http://", "https://", 1);
    env.run(&f).env("HQX_BASE_URL", &https).assert().code(1);
    assert!(env.accepted().is_empty());
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM orders WHERE state = 'pending'"),
        2
    );
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM order_events WHERE event = 'not_sent'"),
        10
    );
    let error: String = env.one("SELECT error FROM http_log WHERE method = 'POST' LIMIT 1");
    // rustls's word for a plain HTTP answer to its hello: TLS was tried.
    assert_eq!(
        error,
        "not sent: cannot connect: client error (Connect): received corrupt message of type InvalidContentType"
    );
}
