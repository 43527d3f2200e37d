"""The Data Mixing Agent's networks (paper eq. 3) and the critic CQL pairs with it.

`WindowEncoder` is the Transformer decoder body: causal self-attention over the window of state
tokens [p_t ; f̂_t ; t/T ; l_t] (see `agents.features`), returning the last position's hidden state. `MixingNet` adds the linear head
whose softmax is the next mixture. `StateActionEncoder` is the critic's body: one Transformer layer
over the same window plus a token for the action. The bodies are plain torch modules; `agents.offline_rl`
wraps them as d3rlpy encoders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .features import check_features, token_dim


@dataclass(frozen=True)
class AgentConfig:
    """Shape of the agent. The defaults give about 1.6M parameters at D=16, K=2."""

    window: int = 16
    d_model: int = 256
    layers: int = 2
    heads: int = 4
    ffn: int = 1024
    dropout: float = 0.0
    features: str = "absolute"  # how the state token carries the feedback (agents.features)
    target_left: bool = True  # the state token carries the target fields' fraction of data left (agents.features)

    def __post_init__(self):
        check_features(self.features)

    def to_dict(self) -> dict:
        return asdict(self)


class Block(nn.Module):
    """A pre-norm causal Transformer layer (attention then GELU feed-forward)."""

    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float = 0.0):
        super().__init__()
        self.norm_attn = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn), nn.GELU(), nn.Linear(ffn, d_model), nn.Dropout(dropout))

    def forward(self, h: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """(B, L, d) -> (B, L, d); with `last_only`, (B, 1, d): the last position alone.

        Under the causal mask the last position's output depends on every token, but nothing
        else depends on it, so when only that output is read the layer is computed there alone.
        """
        normed = self.norm_attn(h)
        if last_only:
            h = h[:, -1:] + self.attn(normed[:, -1:], normed, normed, need_weights=False)[0]
        else:
            h = h + self.attn(normed, normed, normed, attn_mask=mask, need_weights=False)[0]
        return h + self.ffn(self.norm_ffn(h))


class WindowEncoder(nn.Module):
    """(B, W, F) or flat (B, W*F) window of state tokens -> (B, d_model) hidden state of the last one."""

    def __init__(self, token_dim: int, window: int, d_model: int, layers: int, heads: int, ffn: int, dropout: float = 0.0,
                 extra_tokens: int = 0):
        super().__init__()
        self.token_dim, self.window = token_dim, window
        self.embed = nn.Linear(token_dim, d_model)
        self.position = nn.Parameter(torch.zeros(window + extra_tokens, d_model))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(Block(d_model, heads, ffn, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        mask = torch.triu(torch.full((window + extra_tokens,) * 2, float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def embed_window(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x.reshape(x.shape[0], self.window, self.token_dim))

    def run(self, h: torch.Tensor) -> torch.Tensor:
        """Embedded tokens (B, L, d) -> the last position's final hidden state (B, d)."""
        n = h.shape[1]
        h, mask = h + self.position[:n], self.causal_mask[:n, :n]
        for block in self.blocks[:-1]:
            h = block(h, mask)
        return self.norm(self.blocks[-1](h, mask, last_only=True)[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(self.embed_window(x))


class MixingNet(nn.Module):
    """The agent: window of state tokens -> logits over D domains; softmax gives p_{t+1} (eq. 3)."""

    def __init__(self, num_domains: int, num_fields: int, config: AgentConfig, num_targets: int = 1):
        super().__init__()
        self.num_domains, self.num_fields, self.num_targets, self.config = num_domains, num_fields, num_targets, config
        num_left = num_targets if config.target_left else 0
        self.body = WindowEncoder(token_dim(num_domains, num_fields, num_left), config.window, config.d_model, config.layers, config.heads,
                                  config.ffn, config.dropout)
        self.head = nn.Linear(config.d_model, num_domains)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, D)."""
        return self.head(self.body(x))

    def mixture(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.forward(x), dim=-1)


class StateActionEncoder(nn.Module):
    """Critic body: a causal Transformer over the state window plus one action token, read at the action token."""

    def __init__(self, token_dim: int, window: int, action_size: int, d_model: int, layers: int = 1, heads: int = 4,
                 ffn: int = 512):
        super().__init__()
        self.body = WindowEncoder(token_dim, window, d_model, layers, heads, ffn, extra_tokens=1)
        self.action = nn.Linear(action_size, d_model)

    def forward(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.body.run(torch.cat([self.body.embed_window(x), self.action(action)[:, None]], dim=1))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
