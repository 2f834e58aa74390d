"""SASRec (Kang & McAuley 2018): causal self-attention over each user's chronological history.

Item embeddings plus learned positions feed pre-LayerNorm causal
self-attention blocks; the output at each position scores every movie
through the same item embeddings (tied), and training asks every position
for the next movie. The loss is softmax cross-entropy over the whole
catalogue, which on ML-1M ranks far better than the per-pair binary losses
of the original paper (Klenitskiy & Vasilev 2023, "Turning Dross Into
Gold Loss: is BERT4Rec really better than SASRec?"); on big catalogues a
sampled softmax with a log-Q correction keeps memory bounded.

A user's vector for ranking is the output at the last position of their
latest `max_len` movies, so scoring every movie is one matrix product with
the item embeddings, the same path as matrix factorisation. The histories
a fitted model ranks from are the ones it was trained on, kept in the
module (its extra state), so a saved model scores exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.models.pair_mlp import Dropout


@dataclass(frozen=True)
class Histories:
    """Every user's movies in protocol B's order (timestamp, then movie id), as CSR: the movies of
    user u are movies[indptr[u]:indptr[u + 1]], oldest first."""

    indptr: np.ndarray  # int64 [n_users + 1]
    movies: np.ndarray  # int64 [n_ratings]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)


def histories(
    users: np.ndarray,
    movies: np.ndarray,
    timestamps: np.ndarray | None,
    n_users: int,
    shuffle_ties: np.random.Generator | None = None,
) -> Histories:
    """Each user's movies by (timestamp, movie id); without timestamps, in the rows' own order.

    `shuffle_ties` orders movies rated in the same second at random instead
    of by id (an honesty check: ML-1M users rate many movies in one second,
    and their id order is then information a nightly job does not have).
    """
    users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
    keys: list[np.ndarray] = []
    if timestamps is not None:
        tie = shuffle_ties.permutation(len(movies)) if shuffle_ties is not None else movies
        keys = [tie, np.asarray(timestamps, np.int64)]
    else:
        keys = [np.arange(len(movies))]
    order = np.lexsort((*keys, users))  # the last key sorts first: user, then time, then ties
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return Histories(indptr, movies[order])


@dataclass(frozen=True)
class Windows:
    """Training windows: inputs movies[start:start + length], targets one step later. A user's
    history of n movies gives n - 1 (input, next movie) positions, cut into windows of at most
    max_len from the end, so every next movie is a target once."""

    start: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    @property
    def positions(self) -> int:
        return int(self.length.sum())


def windows(history: Histories, max_len: int) -> Windows:
    """Every user's (input, next movie) positions in windows of at most `max_len`, latest first."""
    first, n = history.indptr[:-1], history.lengths - 1  # n positions per user (the last movie has no next)
    n = np.maximum(n, 0)
    pieces = -(-n // max_len)  # windows per user
    user = np.repeat(np.arange(len(n)), pieces)
    k = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)  # 0 = the latest window
    end = first[user] + n[user] - k * max_len  # exclusive end of the window's inputs
    length = np.minimum(max_len, end - first[user])
    return Windows(end - length, length)


def batches(w: Windows, batch_size: int, generator: np.random.Generator) -> Iterator[np.ndarray]:
    """Window indices in batches of `batch_size` windows of similar length (so padding costs
    little), in random order: windows are shuffled, sorted by length (stably, so equal lengths
    stay shuffled), cut into batches, and the batches shuffled."""
    order = generator.permutation(len(w))
    order = order[np.argsort(w.length[order], kind="stable")]
    cuts = list(range(0, len(order), batch_size))
    for i in generator.permutation(len(cuts)):
        yield order[cuts[i] : cuts[i] + batch_size]


def padded(movies: np.ndarray, start: np.ndarray, length: np.ndarray, pad: int) -> np.ndarray:
    """[len(start), max(length)] of movies[start:start + length], left-padded with `pad`."""
    width = int(length.max()) if len(length) else 0
    slot = np.arange(width)[None, :] - (width - length)[:, None]  # position within the window, < 0 = padding
    take = np.where(slot >= 0, start[:, None] + slot, 0)
    return np.where(slot >= 0, movies[take] if len(movies) else pad, pad)


class Block(nn.Module):
    """Pre-LayerNorm causal self-attention and a position-wise feed-forward, each with a residual."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), Dropout(dropout), nn.Linear(dim, dim))
        self.drop_attention = Dropout(dropout)
        self.drop_out = Dropout(dropout)
        self.drop_ffn = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x [B, L, d]; mask [B, L, L] additive (0 or -inf). With `last_only`, only the last
        position's output is computed ([B, 1, d]): scoring needs no other."""
        b, _, dim = x.shape
        h = self.attention_norm(x)
        if last_only:
            q = F.linear(h[:, -1:], self.qkv.weight[:dim], self.qkv.bias[:dim])
            k, v = F.linear(h, self.qkv.weight[dim:], self.qkv.bias[dim:]).chunk(2, dim=-1)
            mask, x = mask[:, -1:], x[:, -1:]
        else:
            q, k, v = self.qkv(h).chunk(3, dim=-1)
        heads, size = self.heads, dim // self.heads
        q, k, v = (t.reshape(b, -1, heads, size).transpose(1, 2) for t in (q, k, v))
        weights = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(size)) + mask[:, None], dim=-1)
        attended = (self.drop_attention(weights) @ v).transpose(1, 2).reshape(b, -1, dim)
        x = x + self.drop_out(self.out(attended))
        return x + self.drop_ffn(self.ffn(self.ffn_norm(x)))


class SASRec(nn.Module):
    # score_matrix is one matrix product of user vectors with the item embeddings
    hidden_per_pair = False

    def __init__(
        self,
        n_movies: int,
        max_len: int = 200,
        dim: int = 64,
        blocks: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.n_movies, self.max_len, self.pad = n_movies, max_len, n_movies
        self.movie_embedding = nn.Embedding(n_movies + 1, dim, padding_idx=n_movies)  # the last row pads
        self.position_embedding = nn.Embedding(max_len, dim)
        self.drop_input = Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(blocks))
        self.final_norm = nn.LayerNorm(dim)
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
            elif name.endswith("bias") and "norm" not in name:
                nn.init.zeros_(p)
        with torch.no_grad():
            self.movie_embedding.weight[self.pad].zero_()
        # the histories a fitted model ranks from (set by remember(), saved as extra state)
        self.history = Histories(np.zeros(1, np.int64), np.zeros(0, np.int64))

    # -- the network -----------------------------------------------------
    def encode(self, inputs: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Outputs [B, L, d] for left-padded movie sequences [B, L] (pad = n_movies); with
        `last_only`, [B, d] at the last position.

        Positions count back from each window's last movie (the original's
        left-padded fixed window), so how much padding a batch adds changes
        nothing: a real movie's position and everything it attends to are
        the same.
        """
        length = inputs.shape[1]
        positions = torch.arange(self.max_len - length, self.max_len, device=inputs.device)
        x = self.movie_embedding(inputs) * math.sqrt(self.movie_embedding.embedding_dim)
        x = self.drop_input(x + self.position_embedding(positions))
        valid = inputs != self.pad
        x = x * valid[..., None]
        causal = torch.ones(length, length, dtype=torch.bool, device=inputs.device).tril()
        # a query sees earlier real movies and itself (a padding query only itself, so no row is empty)
        allowed = causal & (valid[:, None, :] | torch.eye(length, dtype=torch.bool, device=inputs.device))
        mask = torch.zeros(allowed.shape, device=inputs.device).masked_fill_(~allowed, float("-inf"))
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1)
        x = self.final_norm(x)
        return x[:, -1] if last_only else x

    def item_matrix(self) -> torch.Tensor:
        """[n_movies, d]: the embeddings every position scores against (padding row excluded)."""
        return self.movie_embedding.weight[: self.n_movies]

    def item_vectors(self) -> torch.Tensor:
        return self.item_matrix().detach()

    # -- the fitted model's histories ---------------------------------------
    def remember(self, history: Histories) -> None:
        """Keep each user's latest `max_len` movies: what the user vectors are computed from."""
        lengths = np.minimum(history.lengths, self.max_len)
        start = history.indptr[1:] - lengths
        indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        take = np.repeat(start, lengths) + np.arange(lengths.sum()) - np.repeat(indptr[:-1], lengths)
        self.history = Histories(indptr, history.movies[take].astype(np.int32))  # half the bytes saved and copied

    def get_extra_state(self) -> dict[str, np.ndarray]:
        return {"indptr": self.history.indptr, "movies": self.history.movies}

    def set_extra_state(self, state: dict[str, np.ndarray]) -> None:
        self.history = Histories(np.asarray(state["indptr"]), np.asarray(state["movies"]))

    @torch.no_grad()
    def user_vectors(self, users: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """[len(users), d]: the last position's output over each user's remembered movies (zeros
        for a user with none). Users are encoded in batches of similar length."""
        idx = users.cpu().numpy()
        start, length = self.history.indptr[idx], np.diff(self.history.indptr)[idx]
        out = torch.zeros((len(idx), self.movie_embedding.embedding_dim), device=users.device)
        order = np.argsort(length, kind="stable")
        order = order[length[order] > 0]
        for i in range(0, len(order), batch):
            part = order[i : i + batch]
            seqs = padded(self.history.movies, start[part], length[part], self.pad)
            vectors = self.encode(torch.from_numpy(seqs).to(users.device), last_only=True)
            out[torch.from_numpy(part).to(users.device)] = vectors.float()
        return out

    @torch.no_grad()
    def score_matrix(
        self, users: torch.Tensor, movies: torch.Tensor | None = None, head: str = "interaction", out=None
    ) -> torch.Tensor:
        """[users, movies] next-movie logits: user vectors times every item embedding (one product)."""
        self.eval()
        vectors = self.user_vectors(users)
        if movies is None:
            return torch.mm(vectors, self.item_matrix().T, out=out)
        return torch.bmm(self.item_matrix()[movies], vectors[:, :, None])[:, :, 0]

    def score_candidates(self, users: torch.Tensor, movies: torch.Tensor, head: str = "interaction") -> torch.Tensor:
        return self.score_matrix(users, movies, head)


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
