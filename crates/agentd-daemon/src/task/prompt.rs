//! The prompt an agent gets for a task: the issue, the comment that triggered the run,
//! and how to act like a teammate (post progress with `agentd issue comment`, move the
//! issue to `in_review` with `agentd issue status` when done).

use agentd_proto::Task;

pub fn build(task: &Task) -> String {
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
    if !task.agent.instructions.trim().is_empty() {
        p.push_str("## Your instructions\n\n");
        p.push_str(task.agent.instructions.trim());
        p.push_str("\n\n");
    }
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
