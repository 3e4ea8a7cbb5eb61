//! "Did you mean": the message for an unknown key, and the allowed key a
//! misspelt, abbreviated or synonymous key most likely meant.

use super::shown;

/// The message for an unknown key, and the allowed key it probably meant.
pub(super) fn unknown_key(
    key: &str,
    allowed: &[&'static str],
    what: &str,
) -> (String, Option<&'static str>) {
    let noun = if what == "a batch file" {
        "key"
    } else {
        "field"
    };
    let key = shown(key);
    if allowed.is_empty() {
        let message = format!("unknown field `{key}`; {what} takes no fields: write it as `{{}}`");
        return (message, None);
    }
    let list = allowed
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let meant = suggest(&key, allowed);
    let message = match meant {
        Some(s) => format!("unknown {noun} `{key}`; did you mean `{s}`? ({what} takes {list})"),
        None => format!(
            "unknown {noun} `{key}`; {what} takes only {list}: delete it or fix the spelling"
        ),
    };
    (message, meant)
}

/// The allowed key a mistyped `key` most likely meant, if any.
pub(super) fn suggest(key: &str, allowed: &[&'static str]) -> Option<&'static str> {
    pub(super) const SYNONYMS: &[(&str, &str)] = &[
        ("qty", "quantity"),
        ("amount", "quantity"),
        ("size", "quantity"),
        ("volume", "quantity"),
        ("px", "price"),
        ("limitprice", "price"),
        ("rate", "price"),
        ("symbol", "pair"),
        ("market", "pair"),
        ("instrument", "pair"),
        ("ticker", "pair"),
        ("kind", "type"),
        ("ordertype", "type"),
        ("direction", "side"),
        ("clientorderid", "id"),
        ("name", "id"),
        ("name", "batch"),
        ("batchid", "batch"),
        ("address", "deposit_address"),
        ("since", "from"),
        ("start", "from"),
        ("fromms", "from"),
        ("until", "to"),
        ("end", "to"),
        ("toms", "to"),
        ("size", "limit"),
        ("pagesize", "limit"),
        ("count", "limit"),
        ("asset", "currency"),
        ("coin", "currency"),
        ("chain", "network"),
        ("state", "status"),
    ];
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let k = norm(key);
    if k.is_empty() {
        return None;
    }
    if let Some(a) = allowed.iter().find(|a| norm(a) == k) {
        return Some(a);
    }
    if let Some(a) = SYNONYMS
        .iter()
        .filter(|(s, _)| *s == k)
        .find_map(|(_, t)| allowed.iter().find(|a| *a == t))
    {
        return Some(a);
    }
    let max = if k.chars().count() <= 4 { 1 } else { 2 };
    if let Some((d, a)) = allowed
        .iter()
        .map(|a| (edit_distance(&k, &norm(a)), *a))
        .min_by_key(|(d, _)| *d)
    {
        if d <= max {
            return Some(a);
        }
    }
    // An abbreviation: same first letter, the rest in order (`qnty`).
    allowed.iter().copied().find(|a| {
        let a = norm(a);
        let mut rest = a.chars();
        k.chars().count() >= 2
            && k.chars().next() == a.chars().next()
            && 3 * k.chars().count() >= a.chars().count()
            && k.chars().all(|c| rest.any(|x| x == c))
    })
}

/// Edit distance counting a swap of neighbours as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}
