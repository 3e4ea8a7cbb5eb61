//! How hqx speaks: JSON lines checked against the schema, what a run says
//! it did, `plan --detailed-exitcode`, GitHub Actions annotations, groups,
//! summaries and outputs, colour choices, `--env-file`, completions and man.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{batch_of, Env, QUICK};

/// A foreign tool the test needs: from `var`, else PATH. Missing, the test
/// skips loudly on a dev machine and fails under CI.
pub fn foreign_tool(name: &str, var: &str) -> Option<PathBuf> {
    let found = std::env::var_os(var).map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        })
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is needed under CI (set {var} or put it on PATH; .ci/run installs it)");
        }
        eprintln!("SKIPPED: {name} not found (set {var} or put it on PATH); under CI this fails");
    }
    found
}

/// Exit code and JSON lines of one `hqx ... --output json`.
pub struct Lines {
    pub code: i32,
    pub lines: Vec<Value>,
    pub stderr: String,
}

impl Lines {
    pub fn of_type(&self, t: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["type"] == t).collect()
    }
    pub fn summary(&self) -> &Value {
        self.lines.last().unwrap()
    }
}

/// Run `cmd` with `--output json`; check the frame every command shares.
pub fn json_of(mut cmd: assert_cmd::Command) -> Lines {
    let out = cmd.args(["--output", "json"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect();
    let code = out.status.code().unwrap();
    assert_eq!(lines[0]["type"], "version", "{stdout}\n{stderr}");
    assert_eq!(lines[0]["format"], 1);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "summary", "{stdout}");
    assert_eq!(last["exit_code"], code, "{stdout}\n{stderr}");
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "summary").count(),
        1,
        "{stdout}"
    );
    Lines {
        code,
        lines,
        stderr,
    }
}

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/output.schema.json")
}

#[test]
fn every_command_speaks_json_lines_that_the_schema_accepts() {
    let env = Env::new();
    let good = env.write("quick.yaml", QUICK);
    let bad = env.write(
        "bad.yaml",
        "version: 1\nbatch: b\norders:\n  - id: x\n    side: bye\n    pair: BTC-USDC\n    type: market\n    quantity: 1\n",
    );
    let mut outputs: Vec<(String, Lines)> = Vec::new();
    let mut c = env.hqx();
    c.args(["validate"]).arg(&good);
    outputs.push(("validate".into(), json_of(c)));
    let mut c = env.hqx();
    c.args(["validate"]).arg(&bad);
    let v = json_of(c);
    assert_eq!(v.code, 2);
    let e = v.of_type("error");
    assert_eq!(
        (
            &e[0]["line"],
            &e[0]["column"],
            &e[0]["field"],
            &e[0]["order_id"]
        ),
        (
            &Value::from(5),
            &Value::from(11),
            &Value::from("orders[0] (x).side"),
            &Value::from("x")
        )
    );
    outputs.push(("validate-bad".into(), v));
    let mut c = env.hqx();
    c.args(["plan", "--detailed-exitcode"]).arg(&good);
    let plan = json_of(c);
    assert_eq!(plan.code, 6, "{}", plan.stderr);
    assert_eq!(plan.summary()["to_place"], 3);
    outputs.push(("plan".into(), plan));

    let first = json_of(env.run(&good));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let actions: Vec<&Value> = first
        .of_type("order")
        .iter()
        .map(|o| &o["action"])
        .collect();
    assert_eq!(actions, ["placed", "placed", "placed"]);
    assert_eq!(first.summary()["placed"], 3);
    assert_eq!(first.of_type("query").len(), 4);
    assert!(first.stderr.contains("placed 3"), "{}", first.stderr);
    outputs.push(("run".into(), first));

    let again = json_of(env.run(&good));
    assert_eq!(again.summary()["placed"], 0);
    assert_eq!(again.summary()["already_placed"], 3);
    assert_eq!(
        again.summary()["message"],
        "nothing to send: 3 orders already placed"
    );
    outputs.push(("rerun".into(), again));
    // What the journal and the exchange hold agree: three placements, once.
    assert_eq!(env.accepted().len(), 3);
    assert_eq!(
        env.one::<i64>(
            "SELECT count(*) FROM http_log WHERE method = 'POST' AND path LIKE '%/order'"
        ),
        3
    );

    // Cancels: a second batch withdraws the first one's resting order.
    let cancel = env.write(
        "cancel.yaml",
        "version: 1\nbatch: drop-1\ncancels:\n  - { id: drop-rest, order: quick-1/rest-1 }\n",
    );
    let mut c = env.hqx();
    c.args(["plan"]).arg(&cancel);
    let plan = json_of(c);
    let planned = plan.of_type("cancel");
    assert_eq!(planned.len(), 1, "{}", plan.stderr);
    assert_eq!(planned[0]["action"], "to_send");
    assert_eq!(plan.summary()["cancels_to_send"], 1);
    outputs.push(("plan-cancel".into(), plan));
    let run = json_of(env.run(&cancel));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let done = run.of_type("cancel");
    assert_eq!(done.len(), 1, "{:?}", run.lines);
    assert_eq!(done[0]["cancel_id"], "drop-rest");
    assert_eq!(run.summary()["cancels"], 1);
    outputs.push(("run-cancel".into(), run));

    let mut c = env.hqx();
    c.args(["reconcile", "--rate", "2000"]);
    outputs.push(("reconcile".into(), json_of(c)));
    let mut c = env.hqx();
    c.args([
        "sql",
        "SELECT order_id, filled_quantity, attempts FROM orders ORDER BY seq",
    ]);
    let sql = json_of(c);
    assert_eq!(sql.of_type("row")[0]["values"]["order_id"], "buy-1");
    assert_eq!(sql.of_type("row")[0]["values"]["filled_quantity"], "2");
    outputs.push(("sql".into(), sql));
    let mut c = env.hqx();
    c.args(["journal", "check"]);
    outputs.push(("journal".into(), json_of(c)));
    let mut c = env.hqx();
    c.args(["resolve", "quick-1", "buy-1", "--as", "absent"]);
    let r = json_of(c);
    assert_eq!(r.code, 2);
    outputs.push(("resolve".into(), r));
    let mut c = env.hqx();
    c.args(["ack", "12345", "--note", "seen"]);
    outputs.push(("ack".into(), json_of(c)));

    let Some(tool) = foreign_tool("check-jsonschema", "HQX_CHECK_JSONSCHEMA") else {
        return;
    };
    let mut files = Vec::new();
    for (name, o) in &outputs {
        let f = env.path(&format!("{name}.json"));
        std::fs::write(&f, serde_json::to_string(&o.lines).unwrap()).unwrap();
        files.push(f);
    }
    let out = Command::new(&tool)
        .arg("--schemafile")
        .arg(schema())
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The schema is strict: a field it does not describe is refused, so
    // it cannot fall behind what hqx writes.
    let stray = env.path("stray.json");
    let mut lines = outputs[0].1.lines.clone();
    lines[1]["surprise"] = Value::from(1);
    std::fs::write(&stray, serde_json::to_string(&lines).unwrap()).unwrap();
    let out = Command::new(&tool)
        .arg("--schemafile")
        .arg(schema())
        .arg(&stray)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_rerun_says_it_sent_nothing_and_plan_exit_codes_tell_changes() {
    let env = Env::new();
    let f = env.write("b.yaml", &batch_of("b", 3));
    let plan = |env: &Env| {
        env.hqx()
            .args(["plan", "--detailed-exitcode"])
            .arg(&f)
            .output()
            .unwrap()
    };
    assert_eq!(plan(&env).status.code(), Some(6));
    // Without the flag, "changes to make" is still success.
    env.hqx().arg("plan").arg(&f).assert().code(0);
    let out = env.run(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("placed 3"), "{text}");
    assert!(text.contains("THIS RUN"), "{text}");
    let out = env.run(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("nothing to send: 3 orders already placed"),
        "{text}"
    );
    assert!(
        !text.contains("THIS RUN"),
        "no table when nothing was sent: {text}"
    );
    assert_eq!(plan(&env).status.code(), Some(0));
    assert_eq!(env.accepted().len(), 3);
    // A conflict is a usage error, with or without the flag.
    let changed = batch_of("b", 3).replace("0.001", "0.009");
    std::fs::write(&f, changed).unwrap();
    assert_eq!(plan(&env).status.code(), Some(2));
}

#[test]
fn under_github_actions_errors_are_annotations_and_runs_write_summary_and_outputs() {
    let env = Env::new();
    let summary = env.path("summary.md");
    let outputs = env.path("outputs.txt");
    let gh = |c: &mut assert_cmd::Command| {
        c.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_OUTPUT", &outputs);
    };
    // A file name with a comma, a message with a %: both escaped.
    let bad = env.write(
        "bad,1.yaml",
        "version: 1\nbatch: b\norders:\n  - id: x\n    side: buy\n    pair: BTC-USDC\n    type: limit\n    quantity: 1\n    price: 5%\n",
    );
    let mut c = env.hqx();
    gh(&mut c);
    let out = c.arg("validate").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let file = bad
        .display()
        .to_string()
        .replace(',', "%2C")
        .replace(':', "%3A");
    assert_eq!(
        lines.first(),
        Some(&format!("::group::hqx validate {}", bad.display()).as_str()),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        format!("::error file={file},line=9,col=12,title=orders[0] (x).price::`5%25` is not a plain decimal: write digits with an optional fraction, like \"2\" or \"24321.00\""),
        "{stdout}"
    );
    assert_eq!(lines.last(), Some(&"::endgroup::"), "{stdout}");
    assert!(!summary.exists(), "validate writes no step summary");

    let good = env.write("quick.yaml", QUICK);
    let mut c = env.run(&good);
    gh(&mut c);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("::group::hqx run {}\n", good.display())),
        "{stdout}"
    );
    assert!(stdout.ends_with("::endgroup::\n"), "{stdout}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("## hqx run `quick-1`: exit 0\n\nplaced 3\n"),
        "{md}"
    );
    assert!(md.contains("| `buy-1` | placed | filled |"), "{md}");
    let outs = std::fs::read_to_string(&outputs).unwrap();
    assert_eq!(
        outs,
        "placed=3\nalready_placed=0\nrejected=0\nunresolved=0\nexit_code=0\n"
    );

    let mut c = env.hqx();
    gh(&mut c);
    c.args(["reconcile", "--rate", "2000"]).assert().code(0);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("## hqx reconcile: in sync"), "{md}");
    let outs = std::fs::read_to_string(&outputs).unwrap();
    assert!(
        outs.ends_with("drift=0\nknown=0\nunresolved=0\nsynced_trades=0\nexit_code=0\n"),
        "{outs}"
    );
}

#[test]
fn a_limit_breached_is_an_annotation_on_the_order_line() {
    let env = Env::new();
    let f = env.write(
        "lim.yaml",
        "version: 1\nbatch: l\nlimits: { max_quantity: { BTC-USDC: \"1\" } }\norders:\n  - id: big\n    side: buy\n    pair: BTC-USDC\n    type: limit\n    quantity: \"3\"\n    price: \"100\"\n",
    );
    let out = env
        .hqx()
        .env("GITHUB_ACTIONS", "true")
        .arg("validate")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let file = f
        .display()
        .to_string()
        .replace(',', "%2C")
        .replace(':', "%3A");
    let want = format!("::error file={file},line=9,col=15,title=orders[0] (big).quantity::quantity 3 is above max_quantity 1 for BTC-USDC");
    assert!(stdout.lines().any(|l| l.starts_with(&want)), "{stdout}");
    assert!(env.accepted().is_empty());
}

#[test]
fn colour_follows_color_no_color_and_clicolor_force() {
    let env = Env::new();
    let bad = env.write("bad.yaml", "version: 1\nbatch: b\norders:\n  - { id: x, side: bye, pair: BTC-USDC, type: market, quantity: 1 }\n");
    let stderr = |args: &[&str], vars: &[(&str, &str)]| {
        let mut c = env.hqx();
        c.args(args).arg("validate").arg(&bad);
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8(out.stderr).unwrap()
    };
    // Piped: plain, unless asked.
    let plain = stderr(&[], &[]);
    assert!(!plain.contains('\x1b'), "{plain}");
    assert!(plain.contains("4 |   - { id: x, side: bye,"), "{plain}");
    assert!(plain.contains("^^^"), "a caret under the column: {plain}");
    assert!(
        plain.contains("orders[0] (x):"),
        "grouped per order: {plain}"
    );
    assert!(stderr(&["--color", "always"], &[]).contains("\x1b["));
    assert!(stderr(&[], &[("CLICOLOR_FORCE", "1")]).contains("\x1b["));
    assert!(!stderr(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]).contains('\x1b'));
    assert!(!stderr(&[], &[("NO_COLOR", "1")]).contains('\x1b'));
}

#[test]
fn env_file_fills_what_is_not_set_and_its_secret_is_never_printed() {
    let env = Env::new();
    let f = env.write("b.yaml", &batch_of("e", 2));
    let other = env.path("other.db");
    let dotenv = env.write(
        "keys.env",
        &format!(
            "HAQQEX_PUBLIC_KEY={}\nHAQQEX_PRIVATE_KEY={}\nHQX_JOURNAL={}\n",
            env.api_key,
            env.secret,
            other.display()
        ),
    );
    // The keys come from the file; HQX_JOURNAL, already set, wins over it.
    let out = env
        .hqx()
        .env_remove("HAQQEX_PUBLIC_KEY")
        .env_remove("HAQQEX_PRIVATE_KEY")
        .arg("--env-file")
        .arg(&dotenv)
        .args(["-vv", "run"])
        .arg(&f)
        .args(["--rate", "2000"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains(&env.secret), "the secret was printed");
    assert_eq!(env.accepted().len(), 2);
    assert!(env.journal_path().exists() && !other.exists());
    // A missing env file is a usage error that says what to check.
    env.hqx()
        .args(["--env-file", "nope.env", "validate"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--env-file nope.env"));
}

#[test]
fn completions_and_man_page() {
    let env = Env::new();
    let out = env.hqx().args(["completions", "bash"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("_hqx()") && text.contains("reconcile"),
        "{text}"
    );
    // Under HQX_OUTPUT=json too: a script is not JSON lines.
    let out = env
        .hqx()
        .env("HQX_OUTPUT", "json")
        .args(["completions", "zsh"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("#compdef hqx"));
    let out = env.hqx().arg("man").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(".TH hqx 1"), "{text}");
    assert!(text.contains("reconcile"), "{text}");
}

/// `plan` writes its listing out together (not a write per line), yet
/// with stdout and stderr on one file everything keeps its place: people's
/// lines, the summary and then the note on stderr; and under `--output
/// json`, where each order's line for people goes to stderr, each line
/// before its order's record, which comes before the next order's line.
#[test]
fn a_plan_held_listing_keeps_its_place_among_stderr_lines() {
    let env = Env::new();
    let f = env.write("b.yaml", &batch_of("b", 600));
    env.run(&f).assert().code(0);
    // Every order changed: a conflict each, then a note on stderr.
    std::fs::write(&f, batch_of("b", 600).replace("25000.00", "24000.00")).unwrap();
    let both = |json: bool| {
        let path = env.path("both.txt");
        let file = std::fs::File::create(&path).unwrap();
        let mut c = env.process();
        if json {
            c.args(["--output", "json"]);
        }
        let status = c
            .arg("plan")
            .arg(&f)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2));
        std::fs::read_to_string(&path).unwrap()
    };

    let text = both(false);
    let lines: Vec<&str> = text.lines().collect();
    let listed: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("CONFLICT"))
        .collect();
    assert_eq!(listed.len(), 600, "{text}");
    let summary = lines
        .iter()
        .position(|l| {
            l.contains("0 to place, 0 already placed or rejected, 0 to resolve, 600 conflict(s)")
        })
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let note = lines
        .iter()
        .position(|l| l.starts_with("600 order(s) changed under an id already journaled"))
        .unwrap_or_else(|| panic!("no note on stderr: {text}"));
    assert!(listed[599] < summary && summary < note, "{text}");

    let text = both(true);
    let lines: Vec<&str> = text.lines().collect();
    let mut last = 0;
    for i in 0..600 {
        let id = format!("o{i} ");
        let human = lines
            .iter()
            .position(|l| l.contains("CONFLICT") && l.contains(&id))
            .unwrap_or_else(|| panic!("no line for o{i}: {text}"));
        let record = lines
            .iter()
            .position(|l| l.starts_with('{') && l.contains(&format!("\"order_id\":\"o{i}\"")))
            .unwrap_or_else(|| panic!("no record for o{i}: {text}"));
        assert!(last <= human && human < record, "o{i}: {text}");
        last = record;
    }
}
