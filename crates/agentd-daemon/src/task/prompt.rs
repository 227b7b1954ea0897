//! The prompt an agent gets for a task: the issue, the comment that triggered the run,
//! and how to act like a teammate on the server this daemon serves — on agentd's server
//! with `agentd issue comment` / `agentd issue status`; on a Multica server with the
//! `multica` CLI, the way Multica's own daemon words it (get the issue, set it
//! `in_progress`, comment, `in_review` or `blocked`, reply to the triggering comment).

use agentd_proto::{ServerKind, Task};

pub fn build(task: &Task, kind: ServerKind) -> String {
    if kind.is_agentd() {
        agentd(task)
    } else {
        multica(task)
    }
}

fn agentd(task: &Task) -> String {
    let mut p = String::new();
    if !task.chat_message.is_empty() {
        p.push_str(&task.chat_message);
        p.push('\n');
        return p;
    }
    if !task.issue_title.is_empty() {
        p.push_str(&format!(
            "You are working on the issue \"{}\".\n\n",
            task.issue_title
        ));
    } else {
        p.push_str(&format!("You are working on issue {}.\n\n", task.issue_id));
    }
    if !task.issue_description.trim().is_empty() {
        p.push_str("## Description\n\n");
        p.push_str(task.issue_description.trim());
        p.push_str("\n\n");
    }
    if !task.trigger_comment_content.trim().is_empty() {
        let who = if task.trigger_author_name.is_empty() {
            "a teammate"
        } else {
            &task.trigger_author_name
        };
        p.push_str(&format!(
            "## Latest comment (from {who})\n\n{}\n\n",
            task.trigger_comment_content.trim()
        ));
    }
    instructions(task, &mut p);
    p.push_str(
        "## Working like a teammate\n\n\
         Your working directory is a git working copy on a branch for this issue; your changes \
         are committed for review when you finish. Keep the team informed with short progress \
         comments: `agentd issue comment \"$AGENTD_ISSUE_ID\" \"<what you did>\"`. When the work \
         is done, move the issue to review: `agentd issue status \"$AGENTD_ISSUE_ID\" in_review`. \
         End with a short summary of what you changed.\n",
    );
    p
}

fn instructions(task: &Task, p: &mut String) {
    if !task.agent.instructions.trim().is_empty() {
        p.push_str("## Your instructions\n\n");
        p.push_str(task.agent.instructions.trim());
        p.push_str("\n\n");
    }
}

/// Multica's prompt (its daemon's `BuildPrompt`, issue and comment variants) with its
/// runtime brief's workflow, which Multica writes to `CLAUDE.md`/`AGENTS.md` instead.
fn multica(task: &Task) -> String {
    let mut p = String::new();
    if !task.chat_session_id.is_empty() || !task.chat_message.is_empty() {
        p.push_str("You are running as a chat assistant for a Multica workspace.\n\n");
        p.push_str(&format!("User message:\n{}\n", task.chat_message));
        return p;
    }
    let issue = &task.issue_id;
    p.push_str("You are running as a local coding agent for a Multica workspace.\n\n");
    p.push_str(&format!("Your assigned issue ID is: {issue}\n\n"));
    let content = task.trigger_comment_content.trim();
    if !task.trigger_comment_id.is_empty() && !content.is_empty() {
        let who = if task.trigger_author_type == "agent" {
            format!("Another agent ({})", task.trigger_author_name)
        } else {
            "A user".to_string()
        };
        p.push_str(&format!(
            "[NEW COMMENT] {who} just left a new comment on this issue. This comment is what \
             triggered this run; respond to it:\n\n"
        ));
        for line in content.lines() {
            p.push_str(&format!("> {line}\n"));
        }
        p.push('\n');
        if task.trigger_author_type == "agent" {
            p.push_str(
                "The comment is from another agent: reply only if you did work or have \
                 something new to say (silence ends agent threads), and do not @mention it \
                 back.\n\n",
            );
        }
    }
    p.push_str(&format!(
        "Start by running `multica issue get {issue} --output json` to read the issue, and \
         `multica issue comment list {issue} --output json` for its discussion (add `--since \
         <RFC3339>` to read only newer comments).\n\n"
    ));
    instructions(task, &mut p);
    p.push_str("## Workflow\n\n");
    if task.trigger_comment_id.is_empty() {
        p.push_str(&format!(
            "1. Set the issue in progress: `multica issue status {issue} in_progress`.\n\
             2. Do the work in your working directory (a git working copy on the issue's \
             branch; your changes are committed when you finish).\n\
             3. Post a comment saying what you did: `multica issue comment add {issue} \
             --content \"...\"`.\n\
             4. Move the issue to review: `multica issue status {issue} in_review` — or, if \
             you are stuck, `multica issue status {issue} blocked` with a comment saying why.\n\n"
        ));
    } else {
        p.push_str(&format!(
            "Do what the comment asks, then reply to it: `multica issue comment add {issue} \
             --parent {} --content \"...\"` (or `--content-stdin` / `--content-file <path>` \
             for long replies). Change the issue's status only if the comment asks for it.\n\n",
            task.trigger_comment_id
        ));
    }
    p.push_str(
        "Always use the `multica` CLI to read and change the issue (it reads \
         MULTICA_SERVER_URL, MULTICA_TOKEN, MULTICA_WORKSPACE_ID, MULTICA_AGENT_ID and \
         MULTICA_TASK_ID from your environment). End with a short summary of what you \
         changed: it becomes the issue's comment if you post none.\n",
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            id: "t1".into(),
            issue_id: "iss-9".into(),
            issue_title: "Fix it".into(),
            ..Task::default()
        }
    }

    #[test]
    fn the_server_kind_picks_the_cli_the_agent_is_told_about() {
        let a = build(&task(), ServerKind::Agentd);
        assert!(a.contains("agentd issue status"), "{a}");
        assert!(!a.contains("multica"), "{a}");
        let m = build(&task(), ServerKind::Multica);
        assert!(m.contains("multica issue get iss-9 --output json"), "{m}");
        assert!(m.contains("multica issue status iss-9 in_progress"), "{m}");
        assert!(!m.contains("agentd issue"), "{m}");
        // An unknown kind is served like Multica.
        assert_eq!(build(&task(), ServerKind::Other), m);
    }

    #[test]
    fn a_comment_on_multica_is_quoted_and_replied_to_under_it() {
        let mut t = task();
        t.trigger_comment_id = "c-7".into();
        t.trigger_comment_content = "please rename it\nthanks".into();
        t.trigger_author_type = "member".into();
        let m = build(&t, ServerKind::Multica);
        assert!(m.contains("[NEW COMMENT] A user"), "{m}");
        assert!(m.contains("> please rename it\n> thanks"), "{m}");
        assert!(m.contains("--parent c-7"), "{m}");
        assert!(!m.contains("in_progress"), "{m}");
    }
}
