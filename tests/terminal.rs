//! hqx as a person sees it in a real terminal: tmux runs a shell, the test
//! types into it (send-keys) and reads the screen (capture-pane). On the
//! terminal a long run shows a progress bar and coloured states; piped,
//! or with --quiet, neither. Waiting is polling the screen until the
//! expected text appears, up to a deadline: never a sleep.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::output::foreign_tool;
use crate::util::{batch_of, Env};

/// A tmux server of our own (its socket in the test's temp dir).
struct Tmux {
    tmux: PathBuf,
    socket: PathBuf,
}

impl Tmux {
    fn start(tmux: PathBuf, dir: &Path) -> Tmux {
        let t = Tmux {
            tmux,
            socket: dir.join("tmux.sock"),
        };
        let ok = t
            .cmd()
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "80",
                "-s",
                "hqx",
                "sh",
            ])
            .env_remove("TMUX")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux would not start");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.tmux);
        c.arg("-S").arg(&self.socket);
        c
    }

    /// Type a line and press Enter.
    fn type_line(&self, line: &str) {
        assert!(self
            .cmd()
            .args(["send-keys", "-t", "hqx", "-l", line])
            .status()
            .unwrap()
            .success());
        assert!(self
            .cmd()
            .args(["send-keys", "-t", "hqx", "Enter"])
            .status()
            .unwrap()
            .success());
    }

    /// The screen; with `escapes`, colours as SGR sequences.
    fn screen(&self, escapes: bool) -> String {
        let mut c = self.cmd();
        c.args(["capture-pane", "-p", "-t", "hqx"]);
        if escapes {
            c.arg("-e");
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    }

    /// Poll the screen until `done` is on it (up to 60 s); returns every
    /// distinct screen seen on the way.
    fn until(&self, done: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen: Vec<String> = Vec::new();
        loop {
            let s = self.screen(false);
            let finished = s.contains(done);
            if seen.last() != Some(&s) {
                seen.push(s);
            }
            if finished {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "no `{done}` on the screen in 60 s:\n{}",
                seen.last().unwrap()
            );
            std::thread::yield_now();
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

#[test]
fn a_terminal_sees_progress_and_colour_a_pipe_sees_plain_text() {
    let Some(tmux) = foreign_tool("tmux", "HQX_TMUX") else {
        return;
    };
    let env = Env::new();
    for name in ["tty", "piped", "quiet"] {
        env.write(&format!("{name}.yaml"), &batch_of(name, 40));
    }
    let script = format!(
        "cd '{dir}'\nunset NO_COLOR CLICOLOR_FORCE HQX_OUTPUT CI GITHUB_ACTIONS\nexport HQX_JOURNAL='{j}' HQX_BASE_URL='{u}' HAQQEX_PUBLIC_KEY='{k}' HAQQEX_PRIVATE_KEY='{s}'\nhqx() {{ '{bin}' \"$@\"; }}\n",
        dir = env.dir.path().display(),
        j = env.journal_path().display(),
        u = env.base_url(),
        k = env.api_key,
        s = env.secret,
        bin = assert_cmd::cargo::cargo_bin("hqx").display(),
    );
    env.write("env.sh", &script);
    let t = Tmux::start(tmux, env.dir.path());
    t.type_line(&format!(". '{}'; clear", env.path("env.sh").display()));
    // 40 orders at 20 requests/s: a couple of seconds of progress.
    t.type_line("hqx run tty.yaml --rate 20 --burst 1; echo DO\"\"NE-$?");
    let screens = t.until("DONE-");
    assert!(
        screens.last().unwrap().contains("DONE-0"),
        "{}",
        screens.last().unwrap()
    );
    let bar = screens
        .iter()
        .find(|s| s.contains("answered") && s.contains("ETA"))
        .unwrap_or_else(|| panic!("no progress bar seen:\n{}", screens.join("\n----\n")));
    assert!(bar.contains("run tty ["), "{bar}");
    let end = t.screen(true);
    let plain_end = t.screen(false);
    assert!(
        !plain_end.contains("answered"),
        "the bar is cleared at the end:\n{plain_end}"
    );
    let row = end
        .lines()
        .find(|l| l.contains("o0 "))
        .unwrap_or_else(|| panic!("no row for o0:\n{end}"));
    assert!(
        row.contains('\x1b'),
        "states are coloured on a terminal: {row:?}"
    );
    assert!(end.contains("placed 40"), "{end}");

    // Piped: no bar, no colour.
    t.type_line("clear; hqx run piped.yaml --rate 20 --burst 1 2>&1 | cat; echo DO\"\"NE-piped");
    let screens = t.until("DONE-piped");
    assert!(
        screens.iter().all(|s| !s.contains("answered")),
        "a bar in a pipe:\n{}",
        screens.join("\n----\n")
    );
    let end = t.screen(true);
    assert!(end.contains("placed 40"), "{end}");
    assert!(!end.contains('\x1b'), "colour in a pipe: {end:?}");

    // --quiet on the terminal: no bar either.
    t.type_line("clear; hqx -q run quiet.yaml --rate 20 --burst 1; echo DO\"\"NE-quiet");
    let screens = t.until("DONE-quiet");
    assert!(
        screens.iter().all(|s| !s.contains("answered")),
        "a bar with --quiet:\n{}",
        screens.join("\n----\n")
    );
    assert_eq!(env.accepted().len(), 120);

    // Ctrl-C while the bar is drawn: the note starts a line of its own, and the
    // run stops (exit 130) with the rest pending for the next run.
    env.write("stop.yaml", &batch_of("stop", 60));
    t.type_line("clear; hqx run stop.yaml --rate 5 --burst 1; echo DO\"\"NE-$?");
    t.until("answered");
    assert!(t
        .cmd()
        .args(["send-keys", "-t", "hqx", "C-c"])
        .status()
        .unwrap()
        .success());
    let screens = t.until("DONE-");
    let end = screens.last().unwrap();
    assert!(end.contains("DONE-130"), "{end}");
    assert!(
        end.lines()
            .any(|l| l.starts_with("interrupted: no new requests will be sent")),
        "the Ctrl-C note is not on a line of its own:\n{end}"
    );
    // The terminal drops output queued when ^C is typed (the tty's flush
    // on interrupt), so the bar may stay as it was; but nothing is ever
    // written onto its line.
    for l in end.lines().filter(|l| l.contains("answered")) {
        assert!(
            l.starts_with("run stop [") && l.trim_end().ends_with('s'),
            "{end}"
        );
    }
    assert!(env.accepted().len() < 180, "the run went on after Ctrl-C");
}
