"""The S2S model's text-only path: the first stage of the staged recipe.

The temporal transformer learns the dialog text before it hears or speaks. Its input at
frame t is what the duplex input is with the audio taken out (no user or assistant code
embeddings): the assistant's text token of frame t - 1, plus the user's text token of
frame t through `UserTextInput`, plus the speaker/style vector. The text head predicts
the assistant's text of frame t, exactly as in the duplex model, so everything this stage
trains (text embedding, temporal transformer, text head, conditioning, analysis heads)
is a tensor of `S2SModel` that the next stage starts from.

`UserTextInput` is scaffolding of this stage only: later stages hear the user instead,
so it lives beside the network (in the Lightning module) and is not exported.
"""

from __future__ import annotations

from torch import Tensor, nn

from telugu_s2s.models.s2s import S2SModel, shift_right


class UserTextInput(nn.Module):
    """The user's words as a temporal input stream: one embedding per character frame."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embedding.weight, std=0.02)  # as the S2S model's tables

    def forward(self, user_text: Tensor) -> Tensor:
        return self.embedding(user_text)  # (B, T) -> (B, T, D)


def text_hidden(
    net: S2SModel,
    user_input: UserTextInput,
    user_text: Tensor,
    prev_text: Tensor,
    speaker_emb: Tensor | None = None,
    style_id: Tensor | None = None,
) -> Tensor:
    """Temporal hidden states (B, T, D) of the text-only path.

    user_text (B, T): the user's token of each frame; prev_text (B, T): the assistant's
    token of the frame before (`text_inputs`). Inside `net.temporal.streaming(B)` each
    call continues the previous chunk, as the duplex `step` does.
    """
    x = net.text_embedding(prev_text) + user_input(user_text)  # (B, T, D)
    cond = net.condition(speaker_emb, style_id, user_text.shape[0])  # (B, D)
    return net.temporal(x + cond[:, None])


def text_inputs(net: S2SModel, assistant_text: Tensor) -> Tensor:
    """The assistant text (B, F) shifted one frame right, TEXT_START first: what frame t sees."""
    return shift_right(assistant_text, net.text_start)
