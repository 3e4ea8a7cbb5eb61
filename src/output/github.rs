//! GitHub Actions: workflow-command annotations and groups, the Markdown
//! step summary (`$GITHUB_STEP_SUMMARY`) and step outputs (`$GITHUB_OUTPUT`).
//!
//! Escaping follows the actions toolkit (`@actions/core` `command.ts`):
//! in a message `%` `\r` `\n` become `%25` `%0D` `%0A`; in a property
//! also `:` and `,` become `%3A` and `%2C`.

use std::io::Write as _;
use std::path::PathBuf;

use super::Diagnostic;

/// GitHub caps a step summary at 1 MiB; hqx keeps each well under it.
pub const SUMMARY_LIMIT: usize = 1 << 20;

/// Rows listed in a step summary table before "and N more".
pub const SUMMARY_ROWS: usize = 300;

/// Escape a workflow command's message.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a workflow command's property value.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Under GitHub Actions.
#[derive(Debug, Clone, Default)]
pub struct Github;

impl Github {
    /// GitHub as the environment describes it.
    pub fn from_env() -> Github {
        Github
    }

    /// `::error file=F,line=L,col=C,title=FIELD::message`.
    pub fn annotation(&self, level: &str, at: Option<&Diagnostic>, message: &str) -> String {
        let mut props = Vec::new();
        if let Some(d) = at {
            props.push(format!(
                "file={}",
                escape_property(&d.path.display().to_string())
            ));
            if d.line > 0 {
                props.push(format!("line={}", d.line));
                props.push(format!("col={}", d.column));
            }
            if !d.field.is_empty() {
                props.push(format!("title={}", escape_property(&d.field)));
            }
        }
        let props = if props.is_empty() {
            String::new()
        } else {
            format!(" {}", props.join(","))
        };
        format!("::{level}{props}::{}", escape_data(message))
    }
}

fn env_file(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn append(path: &PathBuf, text: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// Append Markdown to `$GITHUB_STEP_SUMMARY` when it is set (cut below
/// [`SUMMARY_LIMIT`]). Returns a warning for the user when it cannot.
pub fn step_summary(markdown: &str) -> Option<String> {
    let path = env_file("GITHUB_STEP_SUMMARY")?;
    let mut text = markdown.to_string();
    let room = SUMMARY_LIMIT / 2;
    if text.len() > room {
        let mut cut = room;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n\n…cut: the rest is in the journal (`hqx sql`).\n");
    }
    append(&path, &text).err().map(|e| {
        format!(
            "cannot append to GITHUB_STEP_SUMMARY ({}): {e}",
            path.display()
        )
    })
}

/// Append `name=value` lines to `$GITHUB_OUTPUT` when it is set. Values
/// are single-line (numbers and ids). Returns a warning when it cannot.
pub fn outputs(pairs: &[(&str, String)]) -> Option<String> {
    let path = env_file("GITHUB_OUTPUT")?;
    let mut text = String::new();
    for (k, v) in pairs {
        text.push_str(&format!("{k}={}\n", v.replace(['\r', '\n'], " ")));
    }
    append(&path, &text)
        .err()
        .map(|e| format!("cannot append to GITHUB_OUTPUT ({}): {e}", path.display()))
}

/// A Markdown table cell.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolkit_escaping() {
        assert_eq!(escape_data("50% a\r\nb: c,d"), "50%25 a%0D%0Ab: c,d");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }

    #[test]
    fn annotation_line() {
        let d = Diagnostic {
            path: "dir/b,1.yaml".into(),
            line: 9,
            column: 12,
            field: "orders[0] (buy-1).price".into(),
            message: "m".into(),
        };
        assert_eq!(
            Github.annotation("error", Some(&d), "`1e5` is bad: 100%\nfix it"),
            "::error file=dir/b%2C1.yaml,line=9,col=12,title=orders[0] (buy-1).price::`1e5` is bad: 100%25%0Afix it"
        );
        assert_eq!(Github.annotation("error", None, "x"), "::error::x");
    }
}
