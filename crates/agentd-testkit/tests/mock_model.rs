//! The mock model API over HTTP: event shapes per API, turn selection by marker and
//! tool-result count, errors, the hang, and request recording.

use std::time::Duration;

use agentd_testkit::mock_model::{Api, MockModel, Turn};
use serde_json::{Value, json};

/// `(event name, data)` pairs of an SSE body.
fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, data)
        })
        .collect()
}

fn json_events(body: &str) -> Vec<Value> {
    sse_events(body)
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(&d).expect("event data is JSON"))
        .collect()
}

async fn post(url: String, body: Value) -> (u16, String, String) {
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::Client::new().post(url).json(&body).send(),
    )
    .await
    .expect("request timed out")
    .expect("request");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ctype, resp.text().await.expect("body"))
}

fn anthropic_body(messages: Value) -> Value {
    json!({"model": "claude-test", "stream": true, "max_tokens": 100, "messages": messages})
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": [{"type": "text", "text": text}]})
}

fn tool_result() -> Value {
    json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]})
}

#[tokio::test]
async fn anthropic_text_streams_the_whole_answer() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    let url = format!("{}/v1/messages?beta=true", mock.base_url());
    let (status, ctype, body) = post(url, anthropic_body(json!([user("@mock:text hi")]))).await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/event-stream");
    let events = sse_events(&body);
    let names: Vec<&str> = events.iter().filter_map(|(n, _)| n.as_deref()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let data = json_events(&body);
    let text: String = data
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello from the mock model.");
    assert_eq!(data[0]["message"]["model"], "claude-test");
    let delta = data
        .iter()
        .find(|e| e["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
}

#[tokio::test]
async fn turns_follow_the_tool_results_after_the_last_marker() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    let url = format!("{}/v1/messages", mock.base_url());
    let tool_of = |body: &str| {
        json_events(body)
            .iter()
            .find(|e| e["type"] == "content_block_start")
            .map(|e| e["content_block"].clone())
            .expect("content block")
    };

    let (_, _, b) = post(
        url.clone(),
        anthropic_body(json!([user("@mock:write-shell go")])),
    )
    .await;
    let block = tool_of(&b);
    assert_eq!(
        (block["type"].as_str(), block["name"].as_str()),
        (Some("tool_use"), Some("Write"))
    );
    let input: Value = json_events(&b)
        .iter()
        .find_map(|e| {
            e["delta"]["partial_json"]
                .as_str()
                .map(|s| serde_json::from_str(s).expect("json"))
        })
        .expect("input delta");
    assert_eq!(
        input,
        json!({"file_path": "hello.txt", "content": "hello from mock\n"})
    );

    let (_, _, b) = post(
        url.clone(),
        anthropic_body(json!([user("@mock:write-shell go"), tool_result()])),
    )
    .await;
    assert_eq!(tool_of(&b)["name"], "Bash");

    let (_, _, b) = post(
        url.clone(),
        anthropic_body(json!([
            user("@mock:write-shell go"),
            tool_result(),
            tool_result()
        ])),
    )
    .await;
    assert_eq!(tool_of(&b)["type"], "text");

    // A later marker (a resumed session's new prompt) restarts the count.
    let (_, _, b) = post(
        url,
        anthropic_body(json!([
            user("@mock:write-shell go"),
            tool_result(),
            user("@mock:write again")
        ])),
    )
    .await;
    assert_eq!(tool_of(&b)["name"], "Write");

    let turns: Vec<(Option<String>, usize)> = mock
        .requests()
        .into_iter()
        .map(|r| (r.scenario, r.turn))
        .collect();
    let ws = Some("write-shell".to_string());
    assert_eq!(
        turns,
        [
            (ws.clone(), 0),
            (ws.clone(), 1),
            (ws, 2),
            (Some("write".into()), 0)
        ]
    );
    assert_eq!(mock.count(Api::Anthropic), 4);
}

#[tokio::test]
async fn custom_scripts_and_the_default_script() {
    let mock = MockModel::start(vec![(
        "mine",
        vec![Turn::shell("echo hi"), Turn::text("done")],
    )])
    .await
    .expect("mock");
    let url = format!("{}/v1/messages", mock.base_url());
    // No marker: the first custom script is the default.
    let (_, _, b) = post(url.clone(), anthropic_body(json!([user("no marker here")]))).await;
    let input = json_events(&b)
        .iter()
        .find_map(|e| e["delta"]["partial_json"].as_str().map(str::to_string))
        .expect("tool input");
    assert!(input.contains("echo hi"));
    // Past the end of a script.
    let (_, _, b) = post(
        url,
        anthropic_body(json!([user("@mock:text x"), tool_result()])),
    )
    .await;
    let text: String = json_events(&b)
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "MOCK: script exhausted");
}

#[tokio::test]
async fn anthropic_errors_carry_the_provider_error_body() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    let url = format!("{}/v1/messages", mock.base_url());
    let (status, _, body) = post(url.clone(), anthropic_body(json!([user("@mock:error")]))).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "mock 400"}})
    );
    let (status, _, body) = post(url, anthropic_body(json!([user("@mock:overloaded")]))).await;
    assert_eq!(status, 529);
    assert!(body.contains("overloaded_error"));
}

#[tokio::test]
async fn responses_api_plays_apply_patch_and_exec_command() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    let url = format!("{}/responses", mock.openai_base_url());
    let input = |extra: Vec<Value>| {
        let mut items = vec![json!({"type": "message", "role": "user",
                                    "content": [{"type": "input_text", "text": "@mock:write-shell go"}]})];
        items.extend(extra);
        json!({"model": "gpt-5.5", "stream": true, "input": items})
    };
    let (status, ctype, b) = post(url.clone(), input(vec![])).await;
    assert_eq!((status, ctype.as_str()), (200, "text/event-stream"));
    let events = json_events(&b);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let item = &events[2]["item"];
    assert_eq!(
        (item["type"].as_str(), item["name"].as_str()),
        (Some("custom_tool_call"), Some("apply_patch"))
    );
    assert_eq!(
        item["input"],
        "*** Begin Patch\n*** Add File: hello.txt\n+hello from mock\n*** End Patch\n"
    );
    assert_eq!(events[3]["response"]["usage"]["input_tokens"], 100);

    let out = json!({"type": "custom_tool_call_output", "call_id": "c", "output": "ok"});
    let (_, _, b) = post(url.clone(), input(vec![out.clone()])).await;
    let item = json_events(&b)[2]["item"].clone();
    assert_eq!(item["name"], "exec_command");
    let args: Value =
        serde_json::from_str(item["arguments"].as_str().expect("args")).expect("json");
    assert_eq!(args, json!({"cmd": "cat hello.txt"}));

    let out2 = json!({"type": "function_call_output", "call_id": "d", "output": "hello"});
    let (_, _, b) = post(url, input(vec![out, out2])).await;
    let events = json_events(&b);
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(text, "MOCK-DONE: wrote and read hello.txt");
    assert_eq!(events[events.len() - 2]["item"]["content"][0]["text"], text);
}

#[tokio::test]
async fn chat_completions_title_call_and_tool_calls() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let msgs = json!([{"role": "user", "content": "@mock:write go"}]);

    // Tool-less: OpenCode's title request, answered outside the script.
    let (_, _, b) = post(
        url.clone(),
        json!({"model": "m", "stream": true, "messages": msgs}),
    )
    .await;
    assert_eq!(
        sse_events(&b).last().map(|(_, d)| d.as_str()),
        Some("[DONE]")
    );
    let title: String = json_events(&b)
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(title, "Mock title");

    let tools = json!([{"type": "function", "function": {"name": "write"}}]);
    let (_, _, b) = post(
        url.clone(),
        json!({"model": "m", "stream": true, "messages": msgs, "tools": tools}),
    )
    .await;
    let events = json_events(&b);
    let call = &events[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "write");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("args")).expect("json");
    assert_eq!(
        args,
        json!({"filePath": "hello.txt", "content": "hello from mock\n"})
    );
    assert!(
        events
            .iter()
            .any(|e| e["choices"][0]["finish_reason"] == "tool_calls")
    );
    assert_eq!(events.last().expect("usage")["usage"]["prompt_tokens"], 100);

    let msgs = json!([{"role": "user", "content": "@mock:write go"},
                      {"role": "assistant", "tool_calls": []},
                      {"role": "tool", "tool_call_id": "c", "content": "ok"}]);
    let (_, _, b) = post(
        url,
        json!({"model": "m", "stream": true, "messages": msgs, "tools": tools}),
    )
    .await;
    let text: String = json_events(&b)
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "MOCK-DONE: wrote hello.txt");
    let scenarios: Vec<Option<String>> = mock.requests().into_iter().map(|r| r.scenario).collect();
    assert_eq!(
        scenarios,
        [None, Some("write".into()), Some("write".into())]
    );
}

/// The tool call of a write-shell script's `turn`, given the tools a request offers.
async fn chat_tool_call(mock: &MockModel, system: &str, tools: Value, turn: usize) -> Value {
    let mut msgs = vec![
        json!({"role": "system", "content": system}),
        json!({"role": "user", "content": "@mock:write-shell go"}),
    ];
    for _ in 0..turn {
        msgs.push(json!({"role": "tool", "tool_call_id": "c", "content": "ok"}));
    }
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let (_, _, b) = post(
        url,
        json!({"model": "m", "stream": true, "messages": msgs, "tools": tools}),
    )
    .await;
    let call = json_events(&b)[0]["choices"][0]["delta"]["tool_calls"][0]["function"].clone();
    let args: Value =
        serde_json::from_str(call["arguments"].as_str().expect("args")).expect("json");
    json!({"name": call["name"], "args": args})
}

#[tokio::test]
async fn chat_completions_tool_calls_follow_the_offered_tools() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    // Qwen Code's tools: other names, other argument names, absolute paths, and required
    // arguments the script does not know.
    let qwen_tools = json!([
        {"type": "function", "function": {"name": "read_file"}},
        {"type": "function", "function": {"name": "write_file", "parameters": {
            "type": "object", "required": ["file_path", "content"],
            "properties": {
                "file_path": {"type": "string", "description": "The absolute path to the file"},
                "content": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "run_shell_command", "parameters": {
            "type": "object", "required": ["command", "is_background"],
            "properties": {"command": {"type": "string"}, "is_background": {"type": "boolean"}}}}}
    ]);
    let system = "Setup.\nI'm currently working in the directory: /w/proj\nMore.";
    let call = chat_tool_call(&mock, system, qwen_tools.clone(), 0).await;
    assert_eq!(
        call,
        json!({"name": "write_file",
               "args": {"file_path": "/w/proj/hello.txt", "content": "hello from mock\n"}})
    );
    let call = chat_tool_call(&mock, system, qwen_tools, 1).await;
    assert_eq!(
        call,
        json!({"name": "run_shell_command",
               "args": {"command": "cat hello.txt", "is_background": false}})
    );

    // Pi's: `path`, relative.
    let pi_tools = json!([
        {"type": "function", "function": {"name": "write", "parameters": {
            "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "bash"}}
    ]);
    let call = chat_tool_call(&mock, "sys", pi_tools, 0).await;
    assert_eq!(
        call,
        json!({"name": "write", "args": {"path": "hello.txt", "content": "hello from mock\n"}})
    );
}

#[tokio::test]
async fn gemini_stream_router_and_errors() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    let base = format!("{}/v1beta/models", mock.base_url());
    let contents = |extra: Vec<Value>| {
        let mut c = vec![json!({"role": "user", "parts": [{"text": "@mock:write-shell go"}]})];
        c.extend(extra);
        json!({"contents": c})
    };
    let url = format!("{base}/gemini-test:streamGenerateContent?alt=sse");
    let (_, ctype, b) = post(url.clone(), contents(vec![])).await;
    assert_eq!(ctype, "text/event-stream");
    let events = json_events(&b);
    let call = &events[0]["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "write_file");
    assert_eq!(call["args"]["file_path"], "hello.txt");

    let resp = json!({"role": "user", "parts": [{"functionResponse": {"name": "write_file", "response": {}}}]});
    let (_, _, b) = post(url.clone(), contents(vec![resp.clone()])).await;
    let call = &json_events(&b)[0]["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(
        (call["name"].as_str(), call["args"]["command"].as_str()),
        (Some("run_shell_command"), Some("cat hello.txt"))
    );

    let (_, _, b) = post(url, contents(vec![resp.clone(), resp])).await;
    let events = json_events(&b);
    let text: String = events
        .iter()
        .filter_map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "MOCK-DONE: wrote and read hello.txt");
    let last = events.last().expect("last");
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 102);

    let (status, _, b) = post(
        format!("{base}/flash-lite:generateContent"),
        contents(vec![]),
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&b).expect("json");
    let choice: Value = serde_json::from_str(
        v["candidates"][0]["content"]["parts"][0]["text"]
            .as_str()
            .expect("text"),
    )
    .expect("router json");
    assert_eq!(choice["model_choice"], "flash");

    let err = json!({"contents": [{"role": "user", "parts": [{"text": "@mock:error"}]}]});
    let (status, _, b) = post(format!("{base}/g:streamGenerateContent?alt=sse"), err).await;
    assert_eq!(status, 400);
    assert!(b.contains("INVALID_ARGUMENT"));
    assert_eq!(mock.count(Api::Gemini), 4);
    assert_eq!(mock.count(Api::GeminiAux), 1);
}

#[tokio::test]
async fn hang_holds_the_request_until_the_mock_is_dropped() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    let url = format!("{}/v1/messages", mock.base_url());
    let request = tokio::spawn(post(url, anthropic_body(json!([user("@mock:hang")]))));
    assert!(
        mock.wait_for(Api::Anthropic, 1, Duration::from_secs(10))
            .await
    );
    assert!(!request.is_finished(), "a hang must not answer");
    drop(mock);
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("hang not released")
        .expect("join");
    assert_eq!(status, 503);
}

#[tokio::test]
async fn unknown_paths_are_recorded_and_404() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    let resp = reqwest::Client::new()
        .head(format!("{}/api/hello", mock.base_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 404);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].api, reqs[0].method.as_str(), reqs[0].uri.as_str()),
        (Api::Other, "HEAD", "/api/hello")
    );
    assert_eq!(mock.request_count(), 1);
}

/// The tool a Chat Completions request's first reply calls, and its arguments, for a
/// request offering `tools` (by name) with `system` as its first message.
async fn first_chat_tool(
    mock: &MockModel,
    tools: &[&str],
    system: &str,
    stream: bool,
) -> (String, Value) {
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let tools: Vec<Value> = tools
        .iter()
        .map(|n| json!({"type": "function", "function": {"name": n}}))
        .collect();
    let msgs = json!([{"role": "system", "content": system},
                      {"role": "user", "content": "@mock:write-shell go"}]);
    let (status, _, b) = post(
        url,
        json!({"model": "m", "stream": stream, "messages": msgs, "tools": tools}),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let call = if stream {
        json_events(&b)
            .into_iter()
            .find_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0).cloned())
            .expect("a streamed tool call")
    } else {
        let v: Value = serde_json::from_str(&b).expect("a chat.completion");
        assert_eq!(v["object"], "chat.completion");
        v["choices"][0]["message"]["tool_calls"][0].clone()
    };
    let args = serde_json::from_str(call["function"]["arguments"].as_str().expect("args"))
        .expect("args are JSON");
    (
        call["function"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        args,
    )
}

#[tokio::test]
async fn chat_completions_speak_each_clis_tools() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    // Hermes Agent.
    let (name, args) = first_chat_tool(&mock, &["terminal", "write_file", "patch"], "", true).await;
    assert_eq!(name, "write_file");
    assert_eq!(
        args,
        json!({"path": "hello.txt", "content": "hello from mock\n"})
    );
    // mini-swe-agent: one `bash` tool, non-streaming; the write is a heredoc.
    let (name, args) = first_chat_tool(&mock, &["bash"], "", false).await;
    assert_eq!(name, "bash");
    assert_eq!(
        args["command"],
        "cat <<'MOCK_EOF' > 'hello.txt'\nhello from mock\nMOCK_EOF"
    );
    // Copilot CLI: `create` with an absolute path from the system prompt's cwd.
    let (name, args) = first_chat_tool(
        &mock,
        &["bash", "view", "create", "edit"],
        "…\n* Current working directory: /w/x\n…",
        true,
    )
    .await;
    assert_eq!(name, "create");
    assert_eq!(
        args,
        json!({"path": "/w/x/hello.txt", "file_text": "hello from mock\n"})
    );
    // Factory Droid.
    let (name, args) = first_chat_tool(&mock, &["Read", "Execute", "Create"], "", true).await;
    assert_eq!(name, "Create");
    assert_eq!(
        args,
        json!({"file_path": "hello.txt", "content": "hello from mock\n"})
    );
    // OpenCode stays the default.
    let (name, _) = first_chat_tool(&mock, &["bash", "write", "edit"], "", true).await;
    assert_eq!(name, "write");

    // mini's final answer: a command whose output starts with its submit marker.
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let msgs = json!([{"role": "user", "content": "@mock:text hi"}]);
    let (_, _, b) = post(
        url,
        json!({"model": "m", "messages": msgs,
               "tools": [{"type": "function", "function": {"name": "bash"}}]}),
    )
    .await;
    let v: Value = serde_json::from_str(&b).expect("json");
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "Hello from the mock model.");
    let args: Value = serde_json::from_str(
        msg["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .expect("args"),
    )
    .expect("json");
    assert_eq!(
        args["command"],
        "printf '%s\\n' COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT 'Hello from the mock model.'"
    );
    assert_eq!(v["usage"]["completion_tokens"], 10);
}

#[tokio::test]
async fn models_lists_the_mock_model() {
    let mock = MockModel::start(vec![]).await.expect("mock");
    let resp = reqwest::get(format!("{}/models", mock.openai_base_url()))
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["data"][0]["id"], "mock-model");
    assert_eq!(mock.requests()[0].method, "GET");
}
