"""ContextMemory: a 10-turn sliding window, top-k retrieval, a nearly closed gate, analysis heads."""

from __future__ import annotations

import torch

from telugu_s2s.models.context_memory import ContextMemory, ContextMemoryConfig, TurnMemoryState

DIM = 16


def make(**overrides) -> ContextMemory:
    torch.manual_seed(0)
    return ContextMemory(ContextMemoryConfig(dim=DIM, attention_dim=DIM, **overrides)).eval()


def test_batched_memory_keeps_exactly_ten_turns_and_evicts_the_oldest() -> None:
    module = make()
    memory, mask = module.empty(2)
    turns = torch.arange(13, dtype=torch.float32)[:, None].expand(13, DIM)  # turn i is all i
    for i, turn in enumerate(turns):
        which = torch.tensor([True, i < 4])  # item 1 only ever gets 4 turns
        memory, mask = module.append(memory, mask, turn.expand(2, DIM), which)
    assert mask[0].sum() == 10 and memory.shape == (2, 10, DIM)
    assert memory[0, :, 0].tolist() == list(range(3, 13))  # 0, 1, 2 evicted; newest last
    assert mask[1].tolist() == [False] * 6 + [True] * 4
    assert memory[1, 6:, 0].tolist() == [0, 1, 2, 3]


def test_session_memory_keeps_ten_turns_and_round_trips() -> None:
    state = TurnMemoryState()
    for i in range(13):
        state.append(torch.full((DIM,), float(i)))
    assert len(state) == 10
    assert [t[0].item() for t in state.to_tensors()] == list(range(3, 13))
    restored = TurnMemoryState.from_tensors(state.to_tensor(DIM))
    assert [t[0].item() for t in restored.turns] == list(range(3, 13))
    short = TurnMemoryState.from_tensors([torch.ones(DIM), 2 * torch.ones(DIM)])
    row, row_mask = short.as_row(DIM)
    assert row_mask.tolist() == [False] * 8 + [True] * 2  # the batched, right-aligned layout
    assert row[-1, 0] == 2 and row[:8].abs().sum() == 0


def test_top_k_retrieval_returns_the_most_relevant_turn() -> None:
    module = make(top_k=1)
    with torch.no_grad():  # identity Q/K: a query scores each turn by their dot product
        module.query.weight.copy_(torch.eye(DIM))
        module.key.weight.copy_(torch.eye(DIM))
    basis = torch.eye(DIM)[:7]  # 7 orthogonal turns
    memory = basis[None].repeat(2, 1, 1)  # (2, 7, D)
    query = torch.stack([5 * basis[4], 5 * basis[2] + 2 * basis[6]])  # (2, D)
    mask = torch.ones(2, 7, dtype=torch.bool)
    with torch.no_grad():
        context, weights = module.retrieve(query, memory, mask)
        expected = module.value(basis[[4, 2]])  # (2, D)
    assert weights.argmax(-1).tolist() == [4, 2]
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    assert (weights > 0).sum(-1).tolist() == [1, 1]  # top-1 keeps exactly one turn
    torch.testing.assert_close(context, expected)
    # The best turn masked out: the next best is retrieved instead.
    mask[1, 2] = False
    with torch.no_grad():
        _, weights = module.retrieve(query, memory, mask)
    assert weights.argmax(-1).tolist() == [4, 6]


def test_top_k_weights_only_the_k_best_valid_turns() -> None:
    module = make(top_k=3)
    memory, query = torch.randn(3, 10, DIM), torch.randn(3, 5, DIM)  # per-frame queries
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 2:] = False  # only 2 stored turns: fewer than k
    mask[2] = False  # an empty memory
    with torch.no_grad():
        context, weights = module.retrieve(query, memory, mask)
    assert weights.shape == (3, 5, 10) and context.shape == (3, 5, DIM)
    assert ((weights > 0).sum(-1)[0] == 3).all()
    assert ((weights > 0).sum(-1)[1] == 2).all() and (weights[1, :, 2:] == 0).all()
    assert (weights[2] == 0).all() and (context[2] == 0).all() and not weights.isnan().any()
    per_frame = mask[:, None].expand(3, 5, 10).clone()  # (B, T, M): a mask per query frame
    per_frame[0, :2] = False  # frames 0-1 of item 0 see no memory yet
    with torch.no_grad():
        context_pf, weights_pf = module.retrieve(query, memory, per_frame)
    torch.testing.assert_close(weights_pf[0, 2:], weights[0, 2:])
    assert (weights_pf[0, :2] == 0).all() and (context_pf[0, :2] == 0).all()


def test_gated_residual_starts_small_and_open_and_is_exact_without_memory() -> None:
    """At init the memory nudges the stream (a small projection behind a half-open gate, which
    training can grow), and an empty memory leaves it exactly unchanged."""
    module = make()
    assert torch.sigmoid(module.gate).min() >= 0.5
    x, memory = torch.randn(2, 6, DIM), torch.randn(2, 10, DIM)
    with torch.no_grad():
        fused, weights = module(x, memory, torch.ones(2, 10, dtype=torch.bool))
        unfused, _ = module(x, memory, torch.zeros(2, 10, dtype=torch.bool))
    assert weights.shape == (2, 6, 10)
    change = (fused - x).norm() / x.norm()
    assert 0 < change < 0.05, change
    torch.testing.assert_close(unfused, x, atol=0, rtol=0)


def test_analysis_heads_ranges_and_pooling() -> None:
    module = make()
    hidden = torch.randn(2, 8, DIM) * 50  # large inputs push tanh to its limits
    spans = torch.tensor([[[1, 4], [4, 8]], [[0, 2], [2, 2]]])  # (B, N, 2); the last is empty
    span_mask = ContextMemory.span_mask(spans, 8)  # (B, N, F)
    pooled = ContextMemory.pool_turn(hidden, span_mask)  # (B, N, D)
    torch.testing.assert_close(pooled[0, 0], hidden[0, 1:4].mean(0))
    assert (pooled[1, 1] == 0).all()
    with torch.no_grad():
        analysis = module.analyze(pooled[:, 0])
    assert analysis.sentiment.shape == (2,)
    assert (analysis.sentiment.abs() <= 1).all()
    assert analysis.topic_logits.shape == (2, 10) and analysis.emotion_logits.shape == (2, 8)
    torch.testing.assert_close(analysis.emotion_probs.sum(-1), torch.ones(2))
    assert (analysis.emotion_probs >= 0).all()
