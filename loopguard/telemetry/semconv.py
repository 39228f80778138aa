"""Attribute and metric names: the GenAI semantic conventions plus loopguard's own.

The names are defined here rather than imported from `opentelemetry-semantic-conventions`,
whose gen_ai names are incubating (marked deprecated as they move between modules). Checked
against opentelemetry-semantic-conventions 0.66b2 (semantic conventions 1.3x, GenAI "development"
status).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# --- GenAI spans ---------------------------------------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"
OP_INVOKE_AGENT = "invoke_agent"
OP_CHAT = "chat"
OP_EXECUTE_TOOL = "execute_tool"
OP_RUN_GUARDRAIL = "run_guardrail"

PROVIDER_NAME = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"  # string[]
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
# Content: exported only when the user opts in (see capture.py).
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"

# --- GenAI guardrails (the `run_guardrail` internal span; semantic-conventions-genai's
# gen-ai-security.md, development status) -----------------------------------------------
GUARDRAIL_COMPONENT_NAME = "gen_ai.guardrail.component.name"
GUARDRAIL_TARGET_TYPE = "gen_ai.guardrail.target.type"  # input | output
GUARDRAIL_TARGET_SUBTYPE = "gen_ai.guardrail.target.subtype"  # llm | tool_call
GUARDRAIL_TARGET_ID = "gen_ai.guardrail.target.id"
GUARDRAIL_VERDICT_TYPE = "gen_ai.guardrail.verdict.type"  # warn | deny
GUARDRAIL_VERDICT_REASON = "gen_ai.guardrail.verdict.reason"
GUARDRAIL_ACTION_TYPE = "gen_ai.guardrail.action.type"  # allow | block | audit
GUARDRAIL_POLICY_ID = "gen_ai.guardrail.security.policy.id"
GUARDRAIL_POLICY_RULE_ID = "gen_ai.guardrail.security.policy.rule.id"
GUARDRAIL_CONTENT_INPUT = "gen_ai.guardrail.security.content.input.value"  # opt-in

ERROR_TYPE = "error.type"
ERROR_TYPE_OTHER = "_OTHER"  # the conventions' fallback when no better type is known

# --- GenAI metrics -------------------------------------------------------------------------
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_TYPE = "gen_ai.token.type"
TOKEN_INPUT = "input"
TOKEN_OUTPUT = "output"
# Bucket boundaries the conventions recommend for the duration histogram.
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)

# --- loopguard's own -----------------------------------------------------------------------
LG_RUN_ID = "loopguard.run.id"
LG_RUN_NAME = "loopguard.run.name"
LG_RUN_STATUS = "loopguard.run.status"
LG_MODE = "loopguard.mode"  # enforce | shadow
LG_CALL_COST = "loopguard.cost_usd"  # this model call's cost
LG_RUN_COST = "loopguard.run.cost_usd"  # the run's cost so far
LG_MODEL_CALLS = "loopguard.run.model_calls"
LG_TOOL_CALLS = "loopguard.run.tool_calls"
LG_VERDICT = "loopguard.verdict"  # warn | nudge | abort | shadow_abort
LG_DETECTOR = "loopguard.detector"
LG_REASON = "loopguard.reason"
LG_STEP = "loopguard.step"
LG_ENFORCED = "loopguard.enforced"
LG_REFUSED = "loopguard.refused"  # the call was refused before it went out
LG_EVIDENCE_PREFIX = "loopguard.evidence."
LG_USAGE_PREFIX = "loopguard.usage."
LG_USAGE_ESTIMATED = "loopguard.usage.estimated"  # the call's usage is the adapter's estimate
LG_ACTION = "loopguard.action"

EVENT_WARNING = "loopguard.warning"
EVENT_ABORT = "loopguard.abort"
EVENT_SHADOW_ABORT = "loopguard.shadow_abort"
ABORT_ERROR_TYPE = "LoopGuardAbort"

METRIC_TOKENS = "loopguard.tokens"  # by gen_ai.token.type, plus these two
TOKEN_CACHE_READ = "cache_read"
TOKEN_CACHE_WRITE = "cache_write"
METRIC_COST = "loopguard.cost"
METRIC_MODEL_CALLS = "loopguard.model_calls"
METRIC_TOOL_CALLS = "loopguard.tool_calls"
METRIC_WARNINGS = "loopguard.warnings"
METRIC_ABORTS = "loopguard.aborts"

# --- gen_ai.provider.name ------------------------------------------------------------------
# LangChain reports its provider as `ls_provider` in a chat model's metadata.
_LS_PROVIDERS = {
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "anthropic-bedrock": "aws.bedrock",
    "anthropic": "anthropic",
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "google_vertexai": "gcp.vertex_ai",
    "google_genai": "gcp.gen_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
}
# Model-id prefixes, tried when the metadata names no provider.
_MODEL_PREFIXES = (
    ("arn:aws:bedrock", "aws.bedrock"),
    ("claude", "anthropic"),
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt", "openai"),
    ("gemini", "gcp.gemini"),
    ("mistral", "mistral_ai"),
    ("command", "cohere"),
    ("deepseek", "deepseek"),
    ("grok", "x_ai"),
)
# Bedrock model ids are `<vendor>.<model>` optionally behind a region prefix (`us.`, `eu.`).
_BEDROCK_VENDORS = (
    "anthropic.",
    "amazon.",
    "meta.",
    "mistral.",
    "cohere.",
    "ai21.",
    "deepseek.",
    "writer.",
    "qwen.",
    "openai.",
)


@lru_cache(maxsize=256)
def _provider(model: str, ls_provider: str | None) -> str | None:
    if ls_provider:
        return _LS_PROVIDERS.get(ls_provider.lower(), ls_provider.lower())
    m = model.lower()
    head, _, rest = m.partition(".")
    if m.startswith(_BEDROCK_VENDORS) or (len(head) == 2 and rest.startswith(_BEDROCK_VENDORS)):
        return "aws.bedrock"
    for prefix, name in _MODEL_PREFIXES:
        if m.startswith(prefix):
            return name
    return None


def provider_name(model: str, meta: dict[str, Any] | None) -> str | None:
    """`gen_ai.provider.name` for a model id, from LangChain's `ls_provider` if given."""
    ls = meta.get("ls_provider") if meta else None
    return _provider(model, ls if isinstance(ls, str) else None)
