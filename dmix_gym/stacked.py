"""K LLaMA proxies of one shape trained as one model: every weight gets a leading K axis.

Small proxies cannot fill a device alone, and on a CPU their Python overhead rivals their matmuls.
Stacking K of them turns K small matmuls into one batched matmul (`torch.bmm`) and K optimizer
loops into one, while every proxy keeps its own weights, data, learning rate, gradient clipping
and AdamW state, so proxy k follows the trajectory the single-model trainer gives it (up to
float rounding, measured in the tests). `DataMixVectorEnv` trains its K sub-envs' proxies this way.

`StackedLlama` computes what `transformers.LlamaForCausalLM` computes (RMSNorm, rotary attention,
SwiGLU; no biases, no dropout), and has the same two parts, `model` (the trunk, whose output has
`last_hidden_state`) and `lm_head`, so the evaluation code in `feedback` runs on either.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_outputs import BaseModelOutput

from .scenario import TrainConfig
from .trainer import autocast, scheduled_lr


def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (K, ..., in) @ weight (K, out, in)^T, one batched matmul over the K models."""
    k, shape = x.shape[0], x.shape[1:-1]
    return torch.bmm(x.reshape(k, -1, x.shape[-1]), weight.transpose(1, 2)).view(k, *shape, weight.shape[1])


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight.view(weight.shape[0], *([1] * (x.dim() - 2)), -1) * x.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StackedTrunk(nn.Module):
    """The decoder stack of K proxies: token ids → final hidden states, (K, B, L, H)."""

    def __init__(self, config: LlamaConfig, num_models: int, template: LlamaForCausalLM):
        super().__init__()
        self.config, self.num_models = config, num_models
        self.weights = nn.ParameterDict()
        for name, p in template.model.named_parameters():
            self.weights[name.replace(".", "/")] = nn.Parameter(p.detach().unsqueeze(0).repeat(num_models, *[1] * p.dim()))
        rotary = template.model.rotary_emb
        self.register_buffer("inv_freq", rotary.inv_freq.detach().clone(), persistent=False)
        self.attention_scaling = float(rotary.attention_scaling)

    def w(self, name: str, slots: slice = slice(None)) -> torch.Tensor:
        return self.weights[name.replace(".", "/")][slots]

    def embed(self, input_ids: torch.Tensor, slots: slice = slice(None)) -> torch.Tensor:
        """Embeddings (K, B, L, H) of ids shared by all models (B, L) or one batch per model (K, B, L)."""
        table = self.w("embed_tokens.weight", slots)
        if input_ids.dim() == 2:
            h = table[:, input_ids]
        else:
            h = table[torch.arange(table.shape[0], device=table.device).view(-1, 1, 1), input_ids]
        pad = self.config.pad_token_id
        if pad is None or not torch.is_grad_enabled():
            return h
        # nn.Embedding(padding_idx=pad) gives the pad row no gradient; so must we.
        return torch.where((input_ids == pad).unsqueeze(-1), h.detach(), h)

    def forward(self, input_ids: torch.Tensor, slots: slice = slice(None)) -> BaseModelOutput:
        """Final hidden states of the models in `slots` (all by default) on their input ids."""
        c = self.config
        h = self.embed(input_ids, slots)
        k, b, length, _ = h.shape
        heads, head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        kv_heads = c.num_key_value_heads
        freqs = torch.arange(length, device=h.device, dtype=torch.float32)[:, None] * self.inv_freq.float()
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = (emb.cos() * self.attention_scaling).to(h.dtype), (emb.sin() * self.attention_scaling).to(h.dtype)
        for i in range(c.num_hidden_layers):
            layer = f"layers.{i}."
            x = _rms_norm(h, self.w(layer + "input_layernorm.weight", slots), c.rms_norm_eps)
            q, kk, v = (_linear(x, self.w(layer + f"self_attn.{n}_proj.weight", slots)) for n in "qkv")
            q = q.view(k * b, length, heads, head_dim).transpose(1, 2)
            kk = kk.view(k * b, length, kv_heads, head_dim).transpose(1, 2)
            v = v.view(k * b, length, kv_heads, head_dim).transpose(1, 2)
            q, kk = q * cos + _rotate_half(q) * sin, kk * cos + _rotate_half(kk) * sin
            attn = F.scaled_dot_product_attention(q, kk, v, is_causal=True, enable_gqa=kv_heads != heads)
            attn = attn.transpose(1, 2).reshape(k, b, length, heads * head_dim)
            h = h + _linear(attn, self.w(layer + "self_attn.o_proj.weight", slots))
            x = _rms_norm(h, self.w(layer + "post_attention_layernorm.weight", slots), c.rms_norm_eps)
            gate = _linear(x, self.w(layer + "mlp.gate_proj.weight", slots))
            up = _linear(x, self.w(layer + "mlp.up_proj.weight", slots))
            h = h + _linear(F.silu(gate) * up, self.w(layer + "mlp.down_proj.weight", slots))
        return BaseModelOutput(last_hidden_state=_rms_norm(h, self.w("norm.weight", slots), c.rms_norm_eps))


class StackedHead(nn.Module):
    """The LM heads of K proxies: hidden states (K, ..., H) → logits (K, ..., V); tied to the embeddings if configured."""

    def __init__(self, trunk: StackedTrunk, template: LlamaForCausalLM):
        super().__init__()
        self.trunk = [trunk]  # a list, so the tied trunk is not registered twice as a submodule
        self.tied = bool(trunk.config.tie_word_embeddings)
        if not self.tied:
            w = template.lm_head.weight.detach()
            self.weight = nn.Parameter(w.unsqueeze(0).repeat(trunk.num_models, 1, 1))

    def forward(self, hidden: torch.Tensor, slots: slice = slice(None)) -> torch.Tensor:
        weight = self.trunk[0].w("embed_tokens.weight", slots) if self.tied else self.weight[slots]
        return _linear(hidden, weight)


class StackedLlama(nn.Module):
    """K `LlamaForCausalLM` proxies of one config as one module; slot k is proxy k."""

    def __init__(self, config: LlamaConfig, num_models: int):
        super().__init__()
        template = LlamaForCausalLM(config)  # the HF module whose names, shapes and rotary table we mirror
        self.config, self.num_models = config, num_models
        self.model = StackedTrunk(config, num_models, template)
        self.lm_head = StackedHead(self.model, template)
        self.param_names = [n for n, _ in template.named_parameters()]  # the HF names, tied weights once

    def _param(self, name: str) -> torch.Tensor:
        return self.lm_head.weight if name == "lm_head.weight" else self.model.w(name.removeprefix("model."))

    @torch.no_grad()
    def load_slot(self, slot: int, state: dict[str, torch.Tensor]) -> None:
        """Set proxy `slot`'s weights from a `LlamaForCausalLM` state dict."""
        for name in self.param_names:
            self._param(name)[slot].copy_(state[name])

    def slot_state(self, slot: int) -> dict[str, torch.Tensor]:
        """Proxy `slot`'s weights as a `LlamaForCausalLM` state dict (tied weights under both names)."""
        state = {name: self._param(name)[slot].detach().clone() for name in self.param_names}
        if self.lm_head.tied:
            state["lm_head.weight"] = state["model.embed_tokens.weight"]
        return state

    def loss(self, input_ids: torch.Tensor, slots: slice = slice(None)) -> torch.Tensor:
        """Mean next-token cross-entropy of each proxy in `slots` on its own (B, L) batch: (k,) from (k, B, L)."""
        hidden = self.model(input_ids, slots).last_hidden_state[:, :, :-1]
        logits = self.lm_head(hidden, slots).float()
        targets = input_ids[:, :, 1:]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        return ce.view(input_ids.shape[0], -1).mean(1)


# fp32 logits of the proxies in one CPU training pass (32 MB): at `cpu` K = 16 at once (0.5 GB) trained 18% slower
# than one at a time, while at `smoke` batching 16 proxies wins (benchmarks/vector_env.py --slot-group).
CPU_LOGITS_PER_PASS = 2**23


def default_slot_group(device: torch.device, logits_per_proxy: int) -> int | None:
    """Proxies per forward and backward pass where nothing says otherwise: all at once on a GPU; on a CPU as many
    as keep their micro-batch logits (`logits_per_proxy` floats each) within `CPU_LOGITS_PER_PASS`."""
    return None if torch.device(device).type == "cuda" else max(1, CPU_LOGITS_PER_PASS // logits_per_proxy)


class StackedTrainer:
    """`ProxyTrainer` for K proxies at once: per-proxy AdamW state, LR schedule position and gradient clipping.

    A proxy that is not `active` in a step (its sub-env is resetting) is left exactly as it was.
    `group`: proxies per forward and backward pass (None: all K). The result is the same; on a CPU,
    K proxies' activations at once spill out of the caches, so smaller groups run faster (`default_slot_group`).
    """

    betas, eps = (0.9, 0.95), 1e-8

    def __init__(self, model: StackedLlama, config: TrainConfig, total_steps: int, peak_lr: float,
                 group: int | None = None):
        if group is not None and group < 1:
            raise ValueError(f"group must be at least 1, got {group}")
        self.model, self.config, self.total_steps, self.peak_lr = model, config, total_steps, peak_lr
        self.group = group or model.num_models
        self.params = list(model.parameters())
        self.decay = [p.dim() >= 3 for p in self.params]  # a proxy's matrices (its 1-D norm weights take no decay)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.step_count = torch.zeros(model.num_models, dtype=torch.long)
        self.device = self.params[0].device

    def reset_slot(self, slot: int) -> None:
        """Proxy `slot` starts its schedule again with empty optimizer state."""
        for m, v in zip(self.exp_avg, self.exp_avg_sq):
            m[slot].zero_()
            v[slot].zero_()
        self.step_count[slot] = 0

    def train_on(self, tokens: torch.Tensor, active: torch.Tensor) -> dict:
        """Train proxy k on its (N, L) sequences `tokens[k]` where `active[k]`; return per-proxy mean loss and seconds."""
        self.model.train()
        started = time.perf_counter()
        active = torch.as_tensor(active, dtype=torch.bool)
        losses = []
        groups = [slice(i, i + self.group) for i in range(0, self.model.num_models, self.group)]
        groups = [g for g in groups if active[g].any()]  # an all-idle group has nothing to learn
        for batch in tokens.split(self.config.micro_batch, dim=1):
            batch = batch.to(self.device, non_blocking=True)
            loss = torch.full((self.model.num_models,), float("nan"), device=self.device)
            for g in groups:
                with autocast(self.device):
                    part = self.model.loss(batch[g], g)
                (part * active[g].to(part.device, part.dtype)).sum().backward()
                loss[g] = part.detach().float()
            self._adamw(active)
            losses.append(loss)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        mean = torch.stack(losses).mean(0).cpu() if losses else torch.full((self.model.num_models,), float("nan"))
        return {"loss": mean.tolist(), "tokens": int(tokens[0].numel()), "seconds": time.perf_counter() - started}

    @torch.no_grad()
    def _adamw(self, active: torch.Tensor) -> None:
        """One clipped AdamW step per active proxy, with each proxy's own learning rate (torch.optim.AdamW's update)."""
        c, (beta1, beta2) = self.config, self.betas
        lr = torch.tensor([scheduled_lr(c, int(s), self.total_steps, self.peak_lr)
                           for s in self.step_count], dtype=torch.float64)
        self.step_count += active.long()
        step = self.step_count.clamp(min=1).double()
        grads = [p.grad for p in self.params]
        norm = torch.stack([g.float().pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()
        per_proxy = {  # (K,) factors of the update, broadcast over each proxy's weights
            "clip": (c.grad_clip / (norm.cpu().double() + 1e-6)).clamp(max=1.0),
            "decay": 1 - lr * c.weight_decay,
            "step_size": lr / (1 - beta1**step),
            "bias2_sqrt": (1 - beta2**step).sqrt(),
        }
        idle = torch.nonzero(~active).flatten().to(self.device)
        for p, g, m, v, decay in zip(self.params, grads, self.exp_avg, self.exp_avg_sq, self.decay):
            f = {name: x.to(self.device, p.dtype).view((-1,) + (1,) * (p.dim() - 1)) for name, x in per_proxy.items()}
            kept = [t[idle].clone() for t in (p, m, v)] if len(idle) else None
            g.mul_(f["clip"])
            if decay:
                p.mul_(f["decay"])
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p.sub_(m * f["step_size"] / (v.sqrt() / f["bias2_sqrt"]).add_(self.eps))
            if kept is not None:  # an idle proxy keeps its weights and optimizer state exactly
                for t, old in zip((p, m, v), kept):
                    t[idle] = old
            p.grad = None
