"""Label sets shared by the data, the models and the server (stdlib only, imports nothing).

The text vocabulary lives beside the tokenizer in `telugu_s2s.data.text`.
"""

from __future__ import annotations

TOPICS: tuple[str, ...] = (
    "greetings",
    "weather",
    "food",
    "travel",
    "health",
    "education",
    "technology",
    "entertainment",
    "shopping",
    "festivals",
)
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "anxious",
    "surprised",
    "curious",
    "grateful",
)
# What a context-dependent turn recalls from an earlier one.
MEMORY_KINDS: tuple[str, ...] = ("name", "city", "plan", "preference", "number")
STYLES: tuple[str, ...] = ("formal", "casual")
