"""The sequence model's losses over a catalogue: full softmax cross-entropy, and a sampled
softmax with a log-Q correction for catalogues too big for it. On the CPU both are fused and
chunked (the [positions, movies] logits never exist at once, gradients included); a GPU keeps
the plain logits matrix.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """Mean softmax cross-entropy of hidden @ items.T against targets, computed in row chunks
    that stay in cache, gradients included, so the [positions, movies] logits never exist at
    once (the idea of fused linear cross-entropy kernels). The backward only scales the
    gradients the forward already computed.

    With `dtype` bfloat16 (autocast on a CPU with native bf16) the three products take bf16
    operands; the softmax, the loss and the item gradient's sum stay float32."""

    @staticmethod
    def forward(
        ctx, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, chunk: int, dtype: torch.dtype
    ) -> torch.Tensor:
        n = len(targets)
        low = dtype != torch.float32
        h_all, i_all = hidden.to(dtype), items.to(dtype)
        grad_hidden = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)
        grad_items = torch.zeros(items.shape, dtype=torch.float32, device=items.device)
        total = torch.zeros((), dtype=torch.float64, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            for s in range(0, n, chunk):
                h, t = h_all[s : s + chunk], targets[s : s + chunk]
                probs = torch.softmax((h @ i_all.T).float(), dim=1)  # the loss is -log p(target)
                rows = torch.arange(len(t), device=t.device)
                p = probs[rows, t]
                total -= p.clamp_min(1e-38).log().sum()
                probs[rows, t] = p - 1.0  # d loss / d logits = softmax - one-hot
                if low:
                    probs = probs.to(dtype)
                    grad_hidden[s : s + chunk] = probs @ i_all
                    grad_items += probs.T @ h
                else:
                    torch.mm(probs, i_all, out=grad_hidden[s : s + chunk])
                    grad_items.addmm_(probs.T, h)
        ctx.save_for_backward(grad_hidden, grad_items)
        ctx.n, ctx.dtypes = max(n, 1), (hidden.dtype, items.dtype)
        return (total / ctx.n).float()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return *_saved_gradients(ctx, grad), None, None, None  # targets, chunk, dtype


def _saved_gradients(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden and item gradients a fused forward computed, scaled by `grad` over the mean's count."""
    grad_hidden, grad_items = ctx.saved_tensors
    scale = grad / ctx.n
    hidden_dtype, items_dtype = ctx.dtypes
    return (grad_hidden * scale).to(hidden_dtype), (grad_items * scale).to(items_dtype)


def _cpu_chunking(columns: int) -> tuple[int, torch.dtype]:
    """Rows per chunk of a fused loss on the CPU (about 2M logits, at most 128 rows), and the
    products' dtype (autocast's, else float32)."""
    chunk = max(16, min(128, (1 << 21) // max(columns, 1)))
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32
    return chunk, dtype


def softmax_cross_entropy(hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Full-catalogue softmax cross-entropy: chunked and fused on the CPU (bf16 products under
    autocast), one logits matrix (bf16 under autocast) on a GPU."""
    if hidden.device.type == "cpu":
        # 128 rows of logits per chunk (1.8 MB at 3,615 movies): measured on 4,096 x 3,615 x 64 with
        # forward and backward, 45-50 ms against 123-143 ms for F.cross_entropy on the whole matrix
        return _SoftmaxCrossEntropy.apply(hidden, items, targets, *_cpu_chunking(items.shape[0]))
    return F.cross_entropy(hidden @ items.T, targets)


class _SampledCrossEntropy(torch.autograd.Function):
    """Mean sampled-softmax cross-entropy (see sampled_cross_entropy) in row chunks, gradients
    included, as _SoftmaxCrossEntropy does for the whole catalogue: the [positions, negatives]
    logits never exist at once. Without it, a batch of 6,400 positions against 2,048 negatives
    made six 26-52 MB temporaries a step (product, correction, mask, concatenation, float copy,
    log-softmax), and freed heap pages piled up by ~2 GB between trims (bench/sasrec_memory.py).

    With `dtype` bfloat16 the products take bf16 operands; the softmax, the loss and the
    gradient sums stay float32."""

    @staticmethod
    def forward(
        ctx,
        hidden: torch.Tensor,
        items: torch.Tensor,
        targets: torch.Tensor,
        negatives: torch.Tensor,
        log_q: torch.Tensor,
        chunk: int,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        n = len(targets)
        low = dtype != torch.float32
        h_all = hidden.to(dtype)
        negative_items, negative_q = items[negatives].to(dtype), log_q[negatives].float()
        target_items = items[targets].float()
        grad_hidden = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)
        grad_negatives = torch.zeros(negative_items.shape, dtype=torch.float32, device=items.device)
        target_coef = torch.empty(n, dtype=torch.float32, device=hidden.device)  # d loss / d positive logit
        total = torch.zeros((), dtype=torch.float64, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            for s in range(0, n, chunk):
                h, t, ti = h_all[s : s + chunk], targets[s : s + chunk], target_items[s : s + chunk]
                positive = (h.float() * ti).sum(dim=1) - log_q[t].float()
                sampled = (h @ negative_items.T).float().sub_(negative_q)
                sampled.masked_fill_(negatives[None, :] == t[:, None], float("-inf"))  # a negative that is the target
                norm = torch.logaddexp(positive, torch.logsumexp(sampled, dim=1))
                total += (norm - positive).sum()
                probs = sampled.sub_(norm[:, None]).exp_()  # softmax over the negatives; the positive's below
                coef = (positive - norm).exp_() - 1.0  # softmax - one-hot at the positive
                target_coef[s : s + chunk] = coef
                grad = coef[:, None] * ti
                if low:
                    probs = probs.to(dtype)
                    grad_hidden[s : s + chunk] = grad + (probs @ negative_items).float()
                    grad_negatives += (probs.T @ h).float()
                else:
                    grad_hidden[s : s + chunk] = torch.addmm(grad, probs, negative_items)
                    grad_negatives.addmm_(probs.T, h)
            grad_items = torch.zeros(items.shape, dtype=torch.float32, device=items.device)
            grad_items.index_add_(0, negatives, grad_negatives)
            grad_items.index_add_(0, targets, target_coef[:, None] * hidden.float())
        ctx.save_for_backward(grad_hidden, grad_items)
        ctx.n, ctx.dtypes = max(n, 1), (hidden.dtype, items.dtype)
        return (total / ctx.n).float()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return *_saved_gradients(ctx, grad), None, None, None, None, None  # targets, negatives, log_q, chunk, dtype


def sampled_cross_entropy(
    hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, log_q: torch.Tensor
) -> torch.Tensor:
    """Sampled softmax with a log-Q correction (Bengio & Senécal 2008; Yi et al. 2019): each
    position scores its own next movie against `negatives` shared by the batch, every logit
    lowered by the log of its sampling probability so the estimate is unbiased for the full
    softmax's gradient; a negative that is the position's own target is masked out.

    Chunked and fused on the CPU (bf16 products under autocast), one logits matrix on a GPU."""
    if hidden.device.type == "cpu":
        return _SampledCrossEntropy.apply(hidden, items, targets, negatives, log_q, *_cpu_chunking(len(negatives)))
    return _sampled_logits_cross_entropy(hidden, items, targets, negatives, log_q)


def _sampled_logits_cross_entropy(
    hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, log_q: torch.Tensor
) -> torch.Tensor:
    positive = (hidden * items[targets]).sum(dim=1) - log_q[targets]
    sampled = hidden @ items[negatives].T - log_q[negatives]
    sampled = sampled.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([positive[:, None], sampled], dim=1).float()
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=hidden.device))
