"""Environment feedback (eq. 1), per-domain held-out loss, probes, and the reward (eq. 6).

A field's feedback f_k combines, with the scenario's weights, the two things dmix can measure of it:
its Q/A set (mean log-prob per answer token, eq. 1) and its own held-out text (mean log-prob per
held-out token, its domains weighted like p0 or p*). At proxy scale a source field's Q/A set
measures answer format more than knowledge (it can rise under target-only training); its held-out
text falls whenever the model forgets the field, so that is a source field's default feedback.
Probes are Q/A benchmarks evaluated at every step and reported, never rewarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .model import backbone_and_head
from .trainer import autocast


def encode_pairs(tokenizer, pairs: list[tuple[str, str]], max_question_tokens: int, max_answer_tokens: int,
                 separator: str = "\n") -> list[tuple[list[int], int]]:
    """Token ids of question + separator + answer and where the answer starts (question cut from the left, answer from the right)."""
    if not pairs:
        return []
    questions = tokenizer([q.rstrip() + separator for q, _ in pairs], add_special_tokens=False)["input_ids"]
    answers = tokenizer([a.strip() for _, a in pairs], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    encoded = []
    for q, a in zip(questions, answers):
        q = [eos] + q[-(max_question_tokens - 1):]
        a = a[:max_answer_tokens]
        if a:
            encoded.append((q + a, len(q)))
    return encoded


@dataclass
class AnswerBatch:
    """Right-padded question+answer ids, a mask over the predicted answer tokens, and the pair each row is."""

    input_ids: torch.Tensor  # (B, L)
    answer_mask: torch.Tensor  # (B, L-1): target position t predicts token t+1, 1 where that token is answer
    field: torch.Tensor  # (B,) field index of each row


def pack_answer_batches(encoded_by_field: list[list[tuple[list[int], int]]], batch_size: int, pad_id: int) -> list[AnswerBatch]:
    """Length-sorted batches over all fields' pairs (little padding, deterministic order)."""
    rows = [(ids, start, k) for k, encoded in enumerate(encoded_by_field) for ids, start in encoded]
    rows.sort(key=lambda r: len(r[0]))
    batches = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        width = max(len(ids) for ids, _, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width - 1), dtype=torch.float32)
        for r, (ids, start, _) in enumerate(chunk):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            mask[r, start - 1 : len(ids) - 1] = 1.0
        batches.append(AnswerBatch(input_ids, mask, torch.tensor([k for _, _, k in chunk])))
    return batches


@dataclass
class EvalSet:
    """What every evaluation of the proxy reads: the rewarded Q/A batches, held-out LM batches of every domain, probes."""

    answers: list[AnswerBatch]  # row groups are fields
    heldout: list[tuple[torch.Tensor, torch.Tensor]]  # (sequences, domain of each sequence)
    num_fields: int
    num_domains: int
    probes: list[AnswerBatch]  # row groups are probes
    num_probes: int


class Evaluation(NamedTuple):
    """What one evaluation measures: Q/A log-prob per field (NaN without a rewarded Q/A set), held-out loss per domain,
    Q/A log-prob per probe."""

    qa: np.ndarray  # (K,)
    domain_loss: np.ndarray  # (D,)
    probes: np.ndarray  # (P,)


def selected_logprobs(model: torch.nn.Module, input_ids: torch.Tensor, select: torch.Tensor | None = None) -> torch.Tensor:
    """Log-probability of next tokens under the model: (B, L-1), or (M,) at the positions where `select` (B, L-1) is set.

    A `StackedLlama` of K proxies gives a leading K axis. Only the selected positions go through the LM
    head, which dominates the cost at small widths.
    """
    backbone, head = backbone_and_head(model)
    with autocast(input_ids.device):
        hidden = backbone(input_ids=input_ids).last_hidden_state[..., :-1, :]
        targets = input_ids[:, 1:]
        if select is not None:
            hidden, targets = hidden[..., select, :], targets[select]
        logits = head(hidden)
    targets = targets.expand(logits.shape[:-1])
    return -F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none").view(targets.shape)


@torch.no_grad()
def feedback_sums(model: torch.nn.Module, batches: list[AnswerBatch], num_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """Per field: the sum over these batches' pairs of each pair's mean answer-token log-prob, and the pair count.

    Their ratio is the feedback f_k(theta) (eq. 1); sums add up across ranks that each evaluate a share.
    Shapes (F,), or (K, F) for a `StackedLlama`.
    """
    device = next(model.parameters()).device
    sums = counts = None
    for batch in batches:
        select = batch.answer_mask.bool()
        selected = selected_logprobs(model, batch.input_ids.to(device), select.to(device)).cpu()
        logp = torch.zeros(selected.shape[:-1] + select.shape, dtype=torch.float32)
        logp[..., select] = selected
        per_pair = (logp.sum(-1) / batch.answer_mask.sum(1)).double()
        if sums is None:
            sums = torch.zeros(per_pair.shape[:-1] + (num_fields,), dtype=torch.float64)
            counts = torch.zeros_like(sums)
        sums.index_add_(-1, batch.field, per_pair)
        counts.index_add_(-1, batch.field, torch.ones_like(per_pair))
    if sums is None:
        return _empty_sums(model, num_fields)
    return sums.numpy(), counts.numpy()


@torch.no_grad()
def domain_loss_sums(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                     num_domains: int) -> tuple[np.ndarray, np.ndarray]:
    """Per domain: the summed mean next-token loss of these (sequences, domain of each) batches, and the count."""
    device = next(model.parameters()).device
    sums = counts = None
    for ids, dom in batches:
        loss = -selected_logprobs(model, ids.to(device)).mean(-1).cpu().double()
        if sums is None:
            sums = torch.zeros(loss.shape[:-1] + (num_domains,), dtype=torch.float64)
            counts = torch.zeros_like(sums)
        sums.index_add_(-1, dom, loss)
        counts.index_add_(-1, dom, torch.ones_like(loss))
    if sums is None:
        return _empty_sums(model, num_domains)
    return sums.numpy(), counts.numpy()


def _empty_sums(model: torch.nn.Module, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero sums and counts when there is nothing to evaluate, with the model's leading K axis if it has one."""
    shape = (model.num_models, size) if hasattr(model, "num_models") else (size,)
    return np.zeros(shape), np.zeros(shape)


def ratio(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums / counts, NaN where nothing was counted."""
    return np.divide(sums, counts, out=np.full(np.shape(sums), np.nan), where=counts > 0)


def evaluate(model: torch.nn.Module, evalset: EvalSet) -> Evaluation:
    """Q/A log-prob per field, held-out loss per domain and Q/A log-prob per probe of a model (a leading K axis for a
    `StackedLlama`)."""
    model.eval()
    qa = feedback_sums(model, evalset.answers, evalset.num_fields)
    loss = domain_loss_sums(model, evalset.heldout, evalset.num_domains)
    probes = feedback_sums(model, evalset.probes, evalset.num_probes)
    return Evaluation(ratio(*qa), ratio(*loss), ratio(*probes))


def field_feedback(qa: np.ndarray, domain_loss: np.ndarray, qa_weight: np.ndarray, heldout_weight: np.ndarray,
                   within: np.ndarray, field_of: np.ndarray) -> np.ndarray:
    """f_k(theta) (eq. 1, per field): qa_weight_k * (Q/A log-prob) + heldout_weight_k * (held-out log-prob).

    The held-out log-prob of field k is -sum_{d in k} within_d * loss_d, `within` the field's own domain
    distribution (p0 on the source field, p* on a target field, each normalised to sum 1 per field).
    """
    heldout = -np.bincount(field_of, weights=within * np.asarray(domain_loss, np.float64), minlength=len(qa_weight))
    qa_part = np.where(qa_weight > 0, qa_weight * np.nan_to_num(np.asarray(qa, np.float64), nan=0.0), 0.0)
    return qa_part + heldout_weight * heldout


def reward(previous_feedback: np.ndarray, feedback_now: np.ndarray, weights: np.ndarray) -> float:
    """r_t = sum_k lambda_k (f_k(theta_t) - f_k(theta_{t-1})) (eq. 6)."""
    return float(np.dot(weights, np.asarray(feedback_now) - np.asarray(previous_feedback)))


def objective(feedback: np.ndarray, weights: np.ndarray) -> np.ndarray | float:
    """sum_k lambda_k f_k of feedback (K,) or (N, K): what the rewards of an episode add up to (eq. 6 telescopes to
    its final value minus its start's). Every method that fits or searches a mixture maximises it at the episode's end;
    a protocol sets lambda so that it is its ranking score up to a constant."""
    value = np.asarray(feedback, np.float64) @ np.asarray(weights, np.float64)
    return float(value) if np.ndim(value) == 0 else value
