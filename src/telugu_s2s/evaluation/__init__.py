"""Evaluations reused by `python -m telugu_s2s.eval` and the notebooks."""

from telugu_s2s.evaluation.cer import ErrorRate, cer, edit_distance, normalize_text
from telugu_s2s.evaluation.s2s import EvalModels, ProtocolConfig, evaluate_s2s

__all__ = [
    "ErrorRate",
    "EvalModels",
    "ProtocolConfig",
    "cer",
    "edit_distance",
    "evaluate_s2s",
    "normalize_text",
]
