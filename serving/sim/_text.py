"""Deterministic text for the simulated engine: token counts, answers, and a valid
instance of a structured-output request (a choice, a JSON schema, JSON)."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

WORDS = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "it",
    "for",
    "on",
    "as",
    "with",
    "was",
    "be",
    "by",
    "this",
    "are",
    "from",
    "at",
    "or",
    "an",
    "have",
    "not",
    "but",
    "they",
    "which",
    "one",
    "you",
    "all",
    "were",
    "her",
    "can",
    "there",
    "has",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "model",
    "answer",
    "token",
    "request",
    "serve",
    "engine",
    "queue",
    "batch",
    "reply",
    "short",
    "clear",
)
CHARS_PER_TOKEN = 4
"""The simulator's tokenizer: about four characters a token, as English text in a BPE
vocabulary of Llama's size."""


def count_tokens(text: str) -> int:
    """Tokens of ``text`` for the simulator (at least 1)."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def seed_of(*parts: object) -> int:
    """A stable seed from the prompt and the request's seed (not Python's salted hash)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def words(seed: int, count: int) -> list[str]:
    """``count`` tokens of deterministic text, each a word with its leading space."""
    rng = random.Random(seed)
    return [" " + rng.choice(WORDS) for _ in range(count)]


def _instance(schema: dict[str, Any], defs: dict[str, Any], depth: int) -> Any:
    if depth > 16:
        return None
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return _instance(defs.get(name, {}), defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _instance(schema[key][0], defs, depth + 1)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {k: _instance(props[k], defs, depth + 1) for k in required if k in props}
    if kind == "array":
        item = _instance(schema.get("items", {}), defs, depth + 1)
        return [item] * int(schema.get("minItems", 0))
    if kind == "string":
        return "x" * int(schema.get("minLength", 0)) or "answer"
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return True
    return None


def schema_instance(schema: dict[str, Any]) -> str:
    """A JSON text valid against ``schema`` (the first option wherever there is a choice)."""
    return json.dumps(_instance(schema, schema.get("$defs", {}), 0))


def structured_answer(params: Any, response_format: Any) -> str | None:
    """The whole answer of a structured-output request, or ``None`` for free text.

    ``params`` is vLLM's ``StructuredOutputsParams``; ``response_format`` is the OpenAI
    ``response_format`` (``json_schema`` or ``json_object``).
    """
    if params is not None:
        if params.choice:
            return str(params.choice[0])
        if params.json is not None:
            schema = json.loads(params.json) if isinstance(params.json, str) else params.json
            return schema_instance(schema)
        if params.json_object:
            return "{}"
    if response_format is not None:
        kind = getattr(response_format, "type", None)
        if kind == "json_schema" and getattr(response_format, "json_schema", None) is not None:
            spec = response_format.json_schema
            schema = getattr(spec, "json_schema", None) or getattr(spec, "schema_", None) or {}
            return schema_instance(dict(schema))
        if kind == "json_object":
            return "{}"
    return None
