"""The API guide: /docs names this server, its examples work when pasted (run here with
Python, curl and Node against a live gunicorn), and /openapi.json is kept honest by
validating real answers against its schemas with jsonschema.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from jsonschema import Draft202012Validator

from conftest import API_KEY
from zto import create_app

PLACEHOLDER_KEY = "sk-your-key"


def example(page: str, name: str) -> str:
    """The text of an example block of /docs, as a reader copies it."""
    match = re.search(rf'<code id="example-{name}">(.*?)</code>', page, re.S)
    assert match, name
    return html.unescape(match.group(1))


def runnable(code: str) -> str:
    assert PLACEHOLDER_KEY in code
    return code.replace(PLACEHOLDER_KEY, API_KEY)


# ---- the page ---------------------------------------------------------------------------

def test_docs_names_this_server_and_its_models(make_settings):
    settings = make_settings(model_name="GLM-4.6-Custom", thinking_mode="think",
                             model_map=(("GLM-4.6", "GLM-4-6-API-V1"), ("GLM-4.5-Air", "0727-106B-API")))
    client = create_app(settings).test_client()
    response = client.get("/docs")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert '<code id="base-url">http://localhost/v1</code>' in page
    for name in ("GLM-4.6", "GLM-4.5-Air", "GLM-4.6-Custom"):
        assert f"<code>{name}</code>" in page
    assert 'model="GLM-4.6-Custom"' in example(page, "python")
    assert '<strong id="thinking-mode">think</strong>' in page
    for words in ("enable_thinking", "stream_options", "include_usage", "reasoning_content", "chat.completion.chunk",
                  "data: [DONE]", "invalid_api_key", "413", "429", "502", "504", "/openapi.json"):
        assert words in page, words
    assert API_KEY not in page  # examples show a placeholder, never a real key


def test_docs_use_the_public_url_behind_a_proxy(make_settings):
    client = create_app(make_settings(trusted_proxies=1)).test_client()
    page = client.get("/docs", headers={"Host": "api.example.com", "X-Forwarded-Proto": "https",
                                        "X-Forwarded-For": "203.0.113.9"}).get_data(as_text=True)
    assert '<code id="base-url">https://api.example.com/v1</code>' in page
    assert client.get("/openapi.json", headers={"Host": "api.example.com", "X-Forwarded-Proto": "https"}
                      ).get_json()["servers"] == [{"url": "https://api.example.com"}]


def test_the_response_samples_are_what_the_api_sends(client):
    page = client.get("/docs").get_data(as_text=True)
    blocks = [html.unescape(b) for b in re.findall(r"<pre><code>(.*?)</code></pre>", page, re.S)]
    whole = json.loads(blocks[0])
    validate(client, "ChatCompletion", whole)
    stream = [line[6:] for line in blocks[1].splitlines() if line.startswith("data: ")]
    assert stream[-1] == "[DONE]"
    for data in stream[:-1]:
        validate(client, "ChatCompletionChunk", json.loads(data))


# ---- the examples, run as pasted ------------------------------------------------------

def test_the_python_example_works(live):
    page = live_page(live)
    code = runnable(example(page, "python"))
    assert f'base_url="{live.base_url}"' in code
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Hello, world!") == 3 and "tokens used:" in result.stdout


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_the_curl_example_works(live):
    code = runnable(example(live_page(live), "curl"))
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    whole, _, stream = result.stdout.partition("data: ")
    assert json.loads(whole)["choices"][0]["message"]["content"] == "Hello, world!"
    assert '"usage"' in stream and stream.rstrip().endswith("data: [DONE]")


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed (the browser test runs this example too)")
def test_the_javascript_example_works_in_node(live):
    code = runnable(example(live_page(live), "js"))
    result = subprocess.run(["node", "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello, world!"


def live_page(live) -> str:
    response = requests.get(live.url + "/docs", timeout=10)
    assert response.status_code == 200
    return response.text


# ---- /openapi.json ------------------------------------------------------------------------

def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def validate(client, schema_name: str, instance) -> None:
    doc = document(client)
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    Draft202012Validator(schema).validate(instance)


def test_the_document_is_well_formed(client):
    doc = document(client)
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": "http://localhost"}]
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(doc)))
    assert refs and refs <= set(doc["components"]["schemas"])
    assert {"/v1/models", "/v1/models/{model_id}", "/v1/chat/completions", "/dashboard/stats",
            "/dashboard/requests", "/metrics", "/healthz"} <= set(doc["paths"])
    request_fields = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert {"enable_thinking", "stream_options", "stream", "model", "messages"} <= set(request_fields)
    for status in ("400", "401", "413", "429", "502", "504"):
        assert status in doc["paths"]["/v1/chat/completions"]["post"]["responses"]


def sse_data(response) -> list:
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    return [json.loads(line[6:]) for line in response.get_data(as_text=True).split("\n")
            if line.startswith("data: ") and line != "data: [DONE]"]


def test_real_answers_match_the_document(client, auth, fake):
    validate(client, "ModelList", client.get("/v1/models").get_json())
    validate(client, "Model", client.get("/v1/models/GLM-4.6").get_json())
    for prompt in ("hi", "scenario:thinking", "scenario:unicode"):
        body = {"messages": [{"role": "user", "content": prompt}], "enable_thinking": True}
        response = client.post("/v1/chat/completions", headers=auth, json=body)
        assert response.status_code == 200
        validate(client, "ChatCompletion", response.get_json())
        stream = client.post("/v1/chat/completions", headers=auth,
                             json={**body, "stream": True, "stream_options": {"include_usage": True}})
        chunks = sse_data(stream)
        assert len(chunks) >= 4 and "usage" in chunks[-1]
        for chunk in chunks:
            validate(client, "ChatCompletionChunk", chunk)
    failed = sse_data(client.post("/v1/chat/completions", headers=auth, json={
        "stream": True, "messages": [{"role": "user", "content": "scenario:mid_error"}]}))
    validate(client, "Error", failed[-1])


def test_error_bodies_match_the_document(client, auth, fake):
    chat = "/v1/chat/completions"
    fake.fail_next("500")
    answers = [
        client.post(chat, json={"messages": [{"role": "user", "content": "hi"}]}),  # 401
        client.post(chat, headers=auth, data="not json"),  # 400
        client.post(chat, headers=auth, json={"messages": []}),  # 400
        client.get("/v1/models/nope"),  # 404
        client.get("/nowhere"),  # 404
        client.get(chat),  # 405
        client.post(chat, headers=auth, json={"messages": [{"role": "user", "content": "hi"}]}),  # 502
    ]
    assert [a.status_code for a in answers] == [401, 400, 400, 404, 404, 405, 502]
    for answer in answers:
        validate(client, "Error", answer.get_json())


def test_dashboard_json_matches_the_document(client, auth):
    client.post("/v1/chat/completions", headers=auth, json={"messages": [{"role": "user", "content": "hi"}]})
    client.get("/v1/models")
    validate(client, "DashboardStats", client.get("/dashboard/stats").get_json())
    recent = client.get("/dashboard/requests").get_json()
    assert len(recent) == 2
    for record in recent:
        validate(client, "RequestRecord", record)
    assert "ok" in document(client)["components"]["schemas"]["RequestRecord"]["required"]


def test_healthz_matches_the_document(make_settings):
    client = create_app(make_settings(dashboard_enabled=False, metrics_enabled=False)).test_client()
    doc = document(client)
    assert "/healthz" in doc["paths"] and doc["paths"]["/healthz"]["get"]["security"] == []
    validate(client, "Health", client.get("/healthz").get_json())
    assert "/healthz" in client.get("/docs").get_data(as_text=True)


def test_the_modules_cite_tests_that_exist():
    root = Path(__file__).resolve().parent.parent
    cited = {name for source in (root / "zto").glob("*.py")
             for name in re.findall(r"tests/[\w/]+\.py", source.read_text())}
    assert cited and all((root / name).is_file() for name in cited), cited


def which_upstream(client) -> str:
    page = client.get("/docs").get_data(as_text=True)
    return " ".join(html.unescape(re.search(r'<p id="which-upstream">(.*?)</p>', page, re.S).group(1)).split())


def test_docs_on_the_web_chat_alone_warn_of_the_captcha(client):
    page = client.get("/docs").get_data(as_text=True)
    which = which_upstream(client)
    assert "<strong>Z.ai's web chat</strong>" in which and "official API</strong>" not in which
    for words in ("captcha", "upstream_captcha_required", "ZAI_API_KEY", "UPSTREAMS=web,api", "X-Zto-Warning",
                  "image parts"):
        assert words in which, words
    for field in ("reasoning_effort", "<code>thinking</code>", "tool_choice", "<code>stop</code>"):
        assert field in page, field


def test_docs_on_the_official_api_alone_say_nothing_of_the_captcha(client_with):
    """An API-only server's users never meet the web chat's captcha: the guide does not
    lead them there."""
    which = which_upstream(client_with(zai_api_keys=("k-1",)))
    assert "<strong>Z.ai's official API</strong>" in which and "web chat" not in which
    for words in ("captcha", "403", "upstream_captcha_required", "X-Zto-Warning", "UPSTREAMS"):
        assert words not in which, words
    assert "tool calls and images" in which
    assert which == which_upstream(client_with(zai_api_keys=("k-1",), upstreams=("api",)))


def test_docs_with_both_upstreams_describe_the_fallback(client_with):
    which = which_upstream(client_with(zai_api_keys=("k-1",), upstreams=("web", "api")))
    assert which.index("<strong>Z.ai's web chat</strong>") < which.index("<strong>Z.ai's official API</strong>")
    assert "official API when the web chat refuses" in which and "captcha" in which
    assert "one normal answer" in which and "go straight to the official API" in which
    for words in ("upstream_captcha_required", "UPSTREAMS=web,api", "X-Zto-Warning"):
        assert words not in which, words
    reverse = which_upstream(client_with(zai_api_keys=("k-1",), upstreams=("api", "web")))
    assert reverse.index("official API</strong>") < reverse.index("web chat</strong>")
    assert "web chat when the official API" in reverse
