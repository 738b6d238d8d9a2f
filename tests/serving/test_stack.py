"""Acceptance against the real stack (Ray Serve + vLLM CPU), with the official openai client."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import run_gavel

pytestmark = [pytest.mark.stack, pytest.mark.engine]  # OpenAI compatibility of the real engine

MODELS = ("app-model", "judge-model")
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


class Verdict(BaseModel):
    """The judge's answer shape used in the structured-output check."""

    reasoning: str
    verdict: Literal["pass", "fail"]


@pytest.fixture(scope="module")
def client(stack: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack, api_key=api_key, max_retries=0, timeout=120)


def test_models_lists_both_roles(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert set(MODELS) <= ids


@pytest.mark.parametrize("model", MODELS)
def test_chat_returns_content_and_usage(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=16)  # type: ignore[arg-type]
    assert r.model == model
    assert r.choices[0].message.content
    assert r.usage is not None
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 16


def test_streaming_yields_chunks_then_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="app-model",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, content_chunks, usage = "", 0, None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            content_chunks += 1
            text += chunk.choices[0].delta.content
        if chunk.usage is not None:
            usage = chunk.usage
    assert content_chunks >= 3
    assert text
    assert usage is not None and usage.completion_tokens > 0


def test_plain_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="app-model", prompt="The capital of France is", max_tokens=8
    )
    assert r.choices[0].text
    assert r.usage is not None and r.usage.completion_tokens > 0


def test_judge_answers_json_schema_with_enum_verdict(client: openai.OpenAI) -> None:
    schema = Verdict.model_json_schema()
    r = client.chat.completions.create(
        model="judge-model",
        messages=[  # type: ignore[list-item]
            {"role": "system", "content": "You grade answers. Reply in JSON."},
            {
                "role": "user",
                "content": "Question: capital of France? Answer: Paris. Is it correct?",
            },
        ],
        max_tokens=96,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": schema, "strict": True},
        },
    )
    content = r.choices[0].message.content
    assert content is not None
    verdict = Verdict.model_validate_json(content)
    assert verdict.verdict in ("pass", "fail")
    assert set(json.loads(content)) == {"reasoning", "verdict"}


def test_eight_concurrent_chats_all_succeed(stack: str, api_key: str) -> None:
    async def run() -> list[str]:
        aclient = openai.AsyncOpenAI(base_url=stack, api_key=api_key, max_retries=0, timeout=180)

        async def one(i: int) -> str:
            r = await aclient.chat.completions.create(
                model=MODELS[i % 2],
                messages=[{"role": "user", "content": f"Count to {i + 3}."}],
                max_tokens=12,
            )
            return r.choices[0].message.content or ""

        try:
            return await asyncio.gather(*(one(i) for i in range(8)))
        finally:
            await aclient.close()

    answers = asyncio.run(run())
    assert len(answers) == 8 and all(answers)


def _post(stack: str, key: str, body: bytes | dict[str, object]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    url = stack + "/chat/completions"
    if isinstance(body, dict):
        return httpx.post(url, json=body, headers=headers, timeout=60)
    return httpx.post(url, content=body, headers=headers, timeout=60)


def _assert_openai_error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert "type" in err
    return err  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"model": "no-such-model", "messages": QUESTION}, 404, "no-such-model"),
        (b"{not json", 400, "JSON"),
        ({"model": "app-model"}, 400, "messages"),
        ({"model": "app-model", "messages": QUESTION, "max_tokens": -1}, 400, "max_tokens"),
        (
            {
                "model": "app-model",
                "messages": [{"role": "user", "content": "hello " * 3000}],
                "max_tokens": 4,
            },
            400,
            "maximum context length is 2048",
        ),
    ],
    ids=["unknown-model", "not-json", "no-messages", "negative-max-tokens", "too-long"],
)
def test_bad_input_gets_openai_error_and_server_keeps_serving(
    stack: str,
    api_key: str,
    client: openai.OpenAI,
    body: bytes | dict[str, object],
    status: int,
    fragment: str,
) -> None:
    err = _assert_openai_error(_post(stack, api_key, body), status)
    assert fragment in str(err["message"])
    r = client.chat.completions.create(model="app-model", messages=QUESTION, max_tokens=4)  # type: ignore[arg-type]
    assert r.choices[0].message.content is not None


def test_openai_client_maps_unknown_model_to_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=QUESTION)  # type: ignore[arg-type]


def test_status_reports_each_model(stack: str) -> None:
    proc = run_gavel("status", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "app gavel: RUNNING" in proc.stdout
    for model in MODELS:
        assert f"LLMServer:{model}" in proc.stdout
    assert "healthy; serving app-model, judge-model" in proc.stdout
