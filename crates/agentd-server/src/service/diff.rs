//! A task's diff as its daemon reported it, made fit to keep and to show: the patch is
//! capped at [`MAX_PATCH_BYTES`] (cut at a line, with a marker line saying how much was
//! left out), the file list at [`MAX_DIFF_FILES`] entries, paths and commits are cleaned.
//! A report is never refused over its diff: a daemon takes a 4xx as final and would drop
//! the task's result with it, so what does not fit is cut (`truncated`), not rejected.

use agentd_proto::api::DiffStat;
use agentd_proto::{MAX_PATCH_BYTES, TaskDiff};

use crate::App;
use crate::service::Error;
use crate::store::{DiffRow, TaskRow};

/// The most files a stored diff lists; the rest are counted (`DiffStat.files`), not listed.
pub const MAX_DIFF_FILES: usize = 5_000;
/// The longest path kept (bytes); a longer one is cut and ends with `…`.
pub const MAX_PATH_BYTES: usize = 4_096;
/// The longest commit id kept (a SHA-256 object id is 64 hex digits).
const MAX_COMMIT_CHARS: usize = 64;

/// The diff to store for a report that arrives at `now`.
pub fn row(diff: TaskDiff, now: i64) -> DiffRow {
    let (diff, files_count) = sanitize(diff);
    DiffRow {
        diff,
        files_count,
        created_at: now,
    }
}

/// Caps and cleans a reported diff; returns it and how many files it listed in all.
/// `truncated` is set when the patch or the file list was cut (and kept when the daemon
/// had already cut it).
pub fn sanitize(mut d: TaskDiff) -> (TaskDiff, u64) {
    let files_count = d.files.len() as u64;
    if d.files.len() > MAX_DIFF_FILES {
        d.files.truncate(MAX_DIFF_FILES);
        d.truncated = true;
    }
    for f in &mut d.files {
        f.path = clean_path(&f.path);
    }
    d.base_commit = clean_commit(&d.base_commit);
    d.head_commit = clean_commit(&d.head_commit);
    if d.patch.contains('\0') {
        d.patch = d.patch.replace('\0', "\u{FFFD}");
    }
    if cap_patch(&mut d.patch) {
        d.truncated = true;
    }
    (d, files_count)
}

/// The marker line that ends a cut patch.
fn marker(omitted: usize) -> String {
    format!("… [diff truncated: {omitted} more bytes not shown]\n")
}

/// Cuts `patch` to at most [`MAX_PATCH_BYTES`], at the end of a line (inside a line only
/// when the first line alone is too long), and appends the marker. Whether it cut.
pub fn cap_patch(patch: &mut String) -> bool {
    if patch.len() <= MAX_PATCH_BYTES {
        return false;
    }
    // The marker for the whole length is at least as long as the one written.
    let budget = MAX_PATCH_BYTES - marker(patch.len()).len() - 1;
    let mut cut = budget;
    while !patch.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = match patch[..cut].rfind('\n') {
        Some(nl) => nl + 1,
        None => cut,
    };
    let omitted = patch.len() - cut;
    patch.truncate(cut);
    if !patch.is_empty() && !patch.ends_with('\n') {
        patch.push('\n');
    }
    patch.push_str(&marker(omitted));
    true
}

/// A path fit to show: control characters (NUL, newlines, escapes) become U+FFFD, at
/// most [`MAX_PATH_BYTES`], never empty.
fn clean_path(p: &str) -> String {
    let mut out: String = p
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if out.len() > MAX_PATH_BYTES {
        let mut cut = MAX_PATH_BYTES - '…'.len_utf8();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(unnamed)");
    }
    out
}

/// A commit id as reported when it is one (hex, at most 64 digits), else empty.
fn clean_commit(c: &str) -> String {
    let c = c.trim();
    if c.len() <= MAX_COMMIT_CHARS && c.chars().all(|ch| ch.is_ascii_hexdigit()) {
        c.to_string()
    } else {
        String::new()
    }
}

/// `3 files changed, +10 -2` (for comments).
pub fn summary(stat: &DiffStat) -> String {
    let s = if stat.files == 1 { "" } else { "s" };
    format!(
        "{} file{s} changed, +{} -{}",
        stat.files, stat.additions, stat.deletions
    )
}

/// The task's whole diff: 404 `no diff` when its final report carried none (or it has
/// not ended yet).
pub async fn of_task(app: &App, task: &TaskRow) -> Result<TaskDiff, Error> {
    match app.store.get_task_diff(task.id.clone()).await? {
        Some(row) => Ok(row.diff),
        None => Err(Error::NotFound(NO_DIFF)),
    }
}

/// The body of a 404 for a task without a diff.
pub const NO_DIFF: &str = "no diff";

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_proto::DiffFile;

    #[test]
    fn a_patch_that_fits_is_kept_as_it_is() {
        let mut p = "diff --git a/x b/x\n+one\n".to_string();
        assert!(!cap_patch(&mut p));
        assert_eq!(p, "diff --git a/x b/x\n+one\n");
        let mut exact = "a".repeat(MAX_PATCH_BYTES - 1) + "\n";
        assert!(!cap_patch(&mut exact));
        assert_eq!(exact.len(), MAX_PATCH_BYTES);
    }

    #[test]
    fn a_long_patch_is_cut_at_a_line_with_a_marker() {
        let line = "+ added line, with some words in it\n";
        let full = line.repeat(MAX_PATCH_BYTES / line.len() * 3);
        let mut p = full.clone();
        assert!(cap_patch(&mut p));
        assert!(p.len() <= MAX_PATCH_BYTES, "{}", p.len());
        let (kept, last) = p.trim_end_matches('\n').rsplit_once('\n').unwrap();
        let kept = format!("{kept}\n");
        assert!(full.starts_with(&kept), "the kept part is a prefix");
        assert_eq!(kept.len() % line.len(), 0, "cut at a line boundary");
        assert_eq!(
            last,
            format!(
                "… [diff truncated: {} more bytes not shown]",
                full.len() - kept.len()
            )
        );
        // Nearly all of the budget is used.
        assert!(p.len() > MAX_PATCH_BYTES - line.len() - 100);
    }

    #[test]
    fn one_endless_line_is_cut_on_a_char_boundary() {
        let full = "é".repeat(MAX_PATCH_BYTES);
        let mut p = full.clone();
        assert!(cap_patch(&mut p));
        assert!(p.len() <= MAX_PATCH_BYTES);
        let (kept, marker) = p.trim_end_matches('\n').split_once('\n').unwrap();
        assert!(full.starts_with(kept) && !kept.is_empty());
        assert!(marker.starts_with("… [diff truncated: "), "{marker}");
    }

    #[test]
    fn file_lists_paths_and_commits_are_bounded_and_clean() {
        let files: Vec<DiffFile> = (0..MAX_DIFF_FILES + 7)
            .map(|n| DiffFile {
                path: format!("f{n}\0.rs"),
                additions: 1,
                ..Default::default()
            })
            .collect();
        let d = TaskDiff {
            base_commit: "abc123".into(),
            head_commit: "not a commit; rm -rf /".into(),
            files,
            patch: "+x\0y\n".into(),
            ..Default::default()
        };
        let (d, n) = sanitize(d);
        assert_eq!(n, MAX_DIFF_FILES as u64 + 7);
        assert_eq!(d.files.len(), MAX_DIFF_FILES);
        assert!(d.truncated);
        assert_eq!(d.files[0].path, "f0\u{FFFD}.rs");
        assert_eq!(d.base_commit, "abc123");
        assert_eq!(d.head_commit, "");
        assert_eq!(d.patch, "+x\u{FFFD}y\n");
        assert_eq!(clean_path(""), "(unnamed)");
        let long = clean_path(&"ü".repeat(MAX_PATH_BYTES));
        assert!(long.len() <= MAX_PATH_BYTES && long.ends_with('…'));
    }

    #[test]
    fn a_small_clean_diff_is_untouched() {
        let d = TaskDiff {
            base_commit: "a".repeat(40),
            head_commit: "b".repeat(40),
            files: vec![DiffFile {
                path: "src/main.rs".into(),
                additions: 2,
                deletions: 1,
                binary: false,
            }],
            additions: 2,
            deletions: 1,
            patch: "diff --git a/src/main.rs b/src/main.rs\n".into(),
            truncated: false,
        };
        let (same, n) = sanitize(d.clone());
        assert_eq!((same, n), (d, 1));
    }
}
