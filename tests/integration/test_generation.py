"""Copy generation against the real CPU LLM deployment (vLLM, SmolLM2, Ray Serve LLM)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from openai import OpenAI

from sluice.contracts import Channel, MessageDraft
from sluice.contracts.briefs import SegmentProfile
from sluice.contracts.clock import SYSTEM_CLOCK
from sluice.decisioning import load_catalog
from sluice.generation.batch import GenerationConfig, generate_drafts
from sluice.generation.cache import DraftCache
from sluice.generation.client import OpenAIChatClient
from sluice.generation.copywriter import Copywriter
from sluice.generation.segments import brief_for
from sluice.generation.slots import personalise
from sluice.generation.templates import SmsCopy

MODEL = "smollm2-135m-instruct"


class RecordingClient(OpenAIChatClient):
    """The real client, keeping every prompt it sends."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, MODEL)
        self.sent: list[list[dict[str, str]]] = []

    async def complete(self, messages: Any, schema: Any, sampling: Any, deadline_s: float) -> Any:
        self.sent.append(messages)
        return await super().complete(messages, schema, sampling, deadline_s)


def sms_briefs(n: int, variant: str = "a") -> list[Any]:
    offer = next(
        o
        for o in load_catalog(decision_date=SYSTEM_CLOCK.today()).offers
        if Channel.SMS in o.channels
    )
    tiers = ["high", "medium", "low"]
    return [
        brief_for(
            offer,
            Channel.SMS,
            "en-US",
            SegmentProfile(tier=tiers[i % 3], lifecycle="active", country="US"),
            variant=f"{variant}{i}",
        )
        for i in range(n)
    ]


def test_openai_client_chat_completion(llm_service: str) -> None:
    client = OpenAI(base_url=llm_service, api_key="not-needed")
    assert [m.id for m in client.models.list().data] == [MODEL]
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8
    )
    assert reply.choices[0].message.content and reply.usage and reply.usage.completion_tokens > 0


def test_structured_draft_validates_and_records_how_it_was_made(llm_service: str) -> None:
    [brief] = sms_briefs(1)
    # A generous deadline: the first constrained request compiles its grammar, and a
    # 2-core machine may be busy. What is checked here is validation and provenance.
    writer = Copywriter(OpenAIChatClient(llm_service, MODEL), deadline_s=180)
    result = asyncio.run(writer.draft(brief))
    draft = result.draft
    if result.reason == "ok":
        SmsCopy(text=draft.text or "")  # the schema the LLM was constrained to
        assert draft.source == "generated" and draft.model_id == MODEL
        assert (
            draft.prompt_tokens > 0 and draft.completion_tokens > 0 and draft.sampling["seed"] >= 0
        )
    else:  # three invalid answers in a row: the fallback is the offer's approved copy
        assert result.reason == "invalid_output" and draft.source == "fallback"
    assert draft.template_version == "copy-v2" and len(draft.prompt_hash or "") == 64


def test_no_personal_value_reaches_a_prompt(llm_service: str, synth_dir: Path) -> None:
    customers = pq.read_table(synth_dir / "customers.parquet").slice(0, 40).to_pylist()
    offer = next(
        o
        for o in load_catalog(decision_date=SYSTEM_CLOCK.today()).offers
        if Channel.SMS in o.channels
    )
    briefs = [
        brief_for(
            offer,
            Channel.SMS,
            c["locale"],
            SegmentProfile(tier="high", lifecycle="active", country=c["country"]),
            variant="pii",
        )
        for c in customers
    ]
    client = RecordingClient(llm_service)
    writer = Copywriter(client, max_attempts=1)
    unique = {b.prompt_key: b for b in briefs}

    async def draft_some() -> list[Any]:
        return list(await asyncio.gather(*(writer.draft(b) for b in list(unique.values())[:3])))

    results = asyncio.run(draft_some())
    assert client.sent, "no prompt was sent"
    prompts = json.dumps(client.sent) + json.dumps([writer.prompt(b)[0] for b in unique.values()])
    for c in customers:
        for field in ("customer_id", "email", "phone", "first_name", "last_name"):
            value = c[field]
            if value and len(str(value)) > 3:
                assert str(value) not in prompts, (field, value)
    # Names reach copy only through the slot, after generation.
    filled = personalise(
        results[0].draft.model_copy(update={"text": "Hi {first_name}, boots are 20% off"}),
        {"first_name": customers[0]["first_name"]},
    )
    assert filled.text == f"Hi {customers[0]['first_name']}, boots are 20% off"
    hostile = personalise(
        filled.model_copy(update={"text": "Hi {first_name}"}),
        {"first_name": "{last_name}<script>\x07"},
    )
    assert hostile.text == "Hi last_namescript"


def test_campaign_batch_generates_each_prompt_once_and_caches_it(
    llm_service: str, sluice_home: Path
) -> None:
    briefs = sms_briefs(3, variant="batch")
    config = GenerationConfig(base_url=llm_service, max_in_flight=3)
    cache = DraftCache(sluice_home / "drafts.sqlite")
    drafts, first = generate_drafts(briefs * 50, config, cache)
    assert first.prompts == 3 and first.cached == 0 and first.generated + first.fallback == 3
    assert set(drafts) == {b.prompt_key for b in briefs}
    assert all(isinstance(d, MessageDraft) and d.channel is Channel.SMS for d in drafts.values())
    again, second = generate_drafts(briefs, config, cache)
    assert second.cached == first.generated and second.generated + second.fallback == first.fallback
    for key, draft in again.items():
        if draft.source == "generated":
            assert draft == drafts[key]


def test_timeouts_degrade_to_fallback_and_are_counted(llm_service: str, sluice_home: Path) -> None:
    briefs = sms_briefs(4, variant="slow")
    config = GenerationConfig(
        base_url=llm_service, deadline_s=0.001, breaker_after=2, max_in_flight=1
    )
    drafts, report = generate_drafts(briefs, config, DraftCache(sluice_home / "drafts.sqlite"))
    # Two timeouts open the circuit; the rest skip the LLM instead of waiting for it.
    assert report.fallback == 4 and report.reasons == {"timeout": 2, "circuit_open": 2}
    assert all(d.source == "fallback" and d.text for d in drafts.values())


def test_a_stopped_deployment_means_fallback_copy_not_a_stalled_campaign(
    llm_service: str, sluice_home: Path
) -> None:
    """The last LLM test of the module: it takes the deployment down, and a later test
    that asks for ``llm_service`` gets it deployed again."""
    from ray import serve

    serve.delete("llm")
    briefs = sms_briefs(5, variant="down")
    drafts, report = generate_drafts(
        briefs,
        GenerationConfig(base_url=llm_service),
        DraftCache(sluice_home / "drafts.sqlite"),
    )
    assert report.fallback == 5 and report.generated == 0
    # the first prompts see the deployment gone; once the breaker opens, the rest skip it
    assert set(report.reasons) <= {"llm_unavailable", "circuit_open"}
    assert sum(report.reasons.values()) == 5 and report.reasons["llm_unavailable"] >= 3
    assert report.seconds < 60
    approved = briefs[0].offer.approved_copy(Channel.SMS)
    assert approved is not None
    assert {d.text for d in drafts.values()} == {approved.text}


GPU_CONFIG_ENV = "SLUICE_TEST_GPU_LLM_CONFIG"
"""Which GPU config the ``gpu`` test deploys (default: the hub-free smoke config)."""


def gpu_memory_used_mib() -> int:
    import subprocess

    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(x) for x in out.split())


@pytest.mark.gpu
def test_gpu_config_serves_on_a_gpu(serve_port: int, request: pytest.FixtureRequest) -> None:
    """Deploys the GPU config it is given (``SLUICE_TEST_GPU_LLM_CONFIG``, default
    deployments/llm-gpu-smoke.yaml: the packaged SmolLM2 on CUDA vLLM, no hub), and
    probes that config's model id: listed, answering, on the GPU, and writing a draft
    within the slot schema."""
    import os
    import shutil

    import yaml
    from ray import serve

    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU on this machine")
    from tests.integration.conftest import deploy_llm

    repo = Path(__file__).parents[2]
    config = Path(os.environ.get(GPU_CONFIG_ENV) or repo / "deployments" / "llm-gpu-smoke.yaml")
    [app] = yaml.safe_load(config.read_text())["applications"]
    model_id = app["args"]["model_id"]
    if str(app["args"].get("model_source", "")).startswith("builtin:"):
        request.getfixturevalue("prepared_llm")
    if app["name"] in serve.status().applications:
        serve.delete(app["name"])  # the CPU deployment of the session, if any
    before = gpu_memory_used_mib()
    base = deploy_llm(config, serve_port)
    try:
        client = OpenAI(base_url=base, api_key="x")
        assert [m.id for m in client.models.list().data] == [model_id]
        reply = client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=8
        )
        assert reply.choices[0].message.content
        assert gpu_memory_used_mib() - before > 200, "the engine holds no GPU memory"
        [brief] = sms_briefs(1, variant="gpu")
        writer = Copywriter(OpenAIChatClient(base, model_id), deadline_s=120)
        result = asyncio.run(writer.draft(brief))
        assert result.reason in {"ok", "invalid_output"}, result.reason
        if result.reason == "ok":
            assert "{" not in (result.draft.text or "").replace("{first_name}", "")
    finally:
        serve.delete(app["name"])  # a later test that asks for llm_service redeploys the CPU app
