//! Keys and signatures: what the sandbox refuses, what hqx refuses, and
//! that the secret never shows.

use crate::util::{Env, QUICK};
use hqx::sign::{sign, Secret};
use predicates::prelude::*;

fn now_ms() -> i64 {
    hqx::client::now_ms()
}

#[test]
fn tampered_signature_and_stale_timestamp_are_refused_by_the_sandbox() {
    let env = Env::new();
    let secret = Secret::new(env.secret.clone());
    let body = r#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"1","price":"100"}"#;
    let url = format!("{}/trading/api/v1/order", env.base_url());
    let post = |ts: i64, sig: String, body: &'static str| {
        let url = url.clone();
        let key = env.api_key.clone();
        env.rt.block_on(async move {
            reqwest::Client::new()
                .post(url)
                .header("x-api-key", key)
                .header("x-api-timestamp", ts.to_string())
                .header("x-api-sign", sig)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // Signed for another body: tampered.
    let ts = now_ms();
    let sig = sign(&secret, &ts.to_string(), b"{}");
    assert_eq!(post(ts, sig, body), 401);
    // Correct signature over a timestamp 60 s old.
    let old = now_ms() - 60_000;
    assert_eq!(
        post(old, sign(&secret, &old.to_string(), body.as_bytes()), body),
        401
    );
    // The same, fresh: accepted.
    let ts = now_ms();
    assert_eq!(
        post(ts, sign(&secret, &ts.to_string(), body.as_bytes()), body),
        200
    );
    assert_eq!(env.accepted().len(), 1);
}

#[test]
fn a_wrong_secret_is_refused_and_hqx_says_what_to_do() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f)
        .env("HAQQEX_PRIVATE_KEY", "wrong-secret-wrong-secret-wrong!")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("refused the key"));
    assert!(env.accepted().is_empty());
    // Refused orders stay pending: the next run with the right key places them.
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM orders WHERE state = 'pending'"),
        3
    );
    env.run(&f).assert().code(0);
    assert_eq!(env.accepted().len(), 3);
}

#[test]
fn an_expired_key_is_refused_before_any_request() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    let key = env.write(
        "key.json",
        &format!(
            r#"{{"apiKey":"{}","secretKey":"{}","ips":null,"title":"t","createdAt":"2023-08-14T09:22:07.332Z","expiredAt":"2023-11-14T09:22:07.235Z"}}"#,
            env.api_key, env.secret
        ),
    );
    // Protected as a key file must be: the refusal is for the expiry.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.run(&f)
        .arg("--key-file")
        .arg(&key)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expired"))
        .stderr(predicate::str::contains(&env.secret).not());
    assert!(env.accepted().is_empty());
    assert!(!env.journal_path().exists());
}

#[test]
fn the_secret_never_reaches_the_journal_or_the_output() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    let out = env.run(&f).arg("-vv").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(&env.secret));
    for entry in std::fs::read_dir(env.dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("hqx.db")
        {
            let bytes = std::fs::read(&p).unwrap();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains(&env.secret),
                "secret found in {}",
                p.display()
            );
        }
    }
}

#[test]
fn a_second_run_of_a_busy_batch_exits_4_and_touches_nothing() {
    let env = Env::new();
    let f = env.write("b.yaml", QUICK);
    env.run(&f).assert().code(0);
    // Hold the batch's lock as a running hqx would.
    use sha2::Digest;
    let tag = &hex::encode(sha2::Sha256::digest(b"quick-1"))[..16];
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(env.path(&format!("hqx.db.{tag}.lock")))
        .unwrap();
    lock.try_lock().unwrap();
    let before: i64 = env.one("SELECT count(*) FROM runs");
    env.run(&f)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("busy"));
    assert_eq!(env.one::<i64>("SELECT count(*) FROM runs"), before);
    drop(lock);
    env.run(&f).assert().code(0);
}
