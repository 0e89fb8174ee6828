"""A paged KV cache: fixed-size blocks, a free list, block tables and copy-on-write.

A contiguous KV cache reserves ``max_len`` token slots per sequence up front, because it
cannot know how long the answer will be. Most of that reservation is never written. Paging
(vLLM's PagedAttention) borrows the idea of virtual memory instead:

* the cache of one layer is a *pool* of ``num_blocks`` blocks, each holding ``block_size``
  tokens: a tensor ``(num_blocks, block_size, kv_heads, head_dim)`` for K and one for V;
* a *free list* hands out blocks one at a time, when a sequence fills its last block;
* a sequence's *block table* lists its blocks in order: token ``t`` lives in block
  ``table[t // block_size]`` at slot ``t % block_size``;
* blocks carry a *reference count*, so sequences that share a prefix (a system prompt, the
  beams of a beam search) point to the same blocks; a write into a shared, partly filled
  last block first copies it (copy-on-write).

The only memory wasted is the unused tail of each sequence's last block: at most
``block_size - 1`` slots per sequence, instead of ``max_len - length``.

The simulation at the end of the module counts that waste for many requests
(:func:`fragmentation`) and the blocks saved by sharing a prompt (:func:`prefix_sharing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from attn_course.figures import style
from attn_course.validate import check_count, describe_value, resolve_dtype, resolve_scale

__all__ = [
    "BlockAllocator",
    "FragmentationReport",
    "PagedKVCache",
    "PrefixSharingReport",
    "blocks_needed",
    "dense_decode_attention",
    "fragmentation",
    "fragmentation_figure",
    "paged_attention_decode",
    "prefix_sharing",
    "prefix_sharing_figure",
    "sample_requests",
    "validate_paged_inputs",
]


def blocks_needed(tokens: int, block_size: int) -> int:
    """Blocks that hold ``tokens`` tokens: ``ceil(tokens / block_size)``."""
    check_count("tokens", tokens, 0)
    check_count("block_size", block_size)
    return -(-tokens // block_size)


# --- the allocator ----------------------------------------------------------------------


class BlockAllocator:
    """A free list of block ids ``0 .. num_blocks - 1`` with a reference count per block.

    ``allocate()`` pops a free block (reference count 1); ``share(block)`` adds a reference;
    ``free(block)`` drops one, and the block returns to the free list when none is left.
    """

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = check_count("num_blocks", num_blocks)
        # Pop from the end: block 0 is handed out first (reversed), which reads well in demos.
        self._free = list(range(num_blocks - 1, -1, -1))
        self.ref_counts = [0] * num_blocks

    @property
    def num_free(self) -> int:
        """Blocks on the free list."""
        return len(self._free)

    @property
    def num_used(self) -> int:
        """Blocks with at least one reference."""
        return self.num_blocks - len(self._free)

    def allocate(self) -> int:
        """Take a block off the free list; ValueError when none is left."""
        if not self._free:
            raise ValueError(
                f"out of blocks: all num_blocks = {self.num_blocks} are in use; "
                "free a sequence or build the cache with a larger num_blocks"
            )
        block = self._free.pop()
        self.ref_counts[block] = 1
        return block

    def _check_owned(self, block: object) -> int:
        block = check_count("block", block, 0, self.num_blocks - 1)
        if self.ref_counts[block] == 0:
            raise ValueError(f"block {block} is free: it cannot be shared or freed again")
        return block

    def share(self, block: int) -> None:
        """One more owner for ``block`` (a forked sequence points to it too)."""
        self.ref_counts[self._check_owned(block)] += 1

    def free(self, block: int) -> None:
        """Drop one reference; the block goes back on the free list at zero."""
        block = self._check_owned(block)
        self.ref_counts[block] -= 1
        if self.ref_counts[block] == 0:
            self._free.append(block)


# --- the cache --------------------------------------------------------------------------


class PagedKVCache:
    """K and V of many sequences in block pools, one pool pair per layer.

    ``k_pools[layer]`` and ``v_pools[layer]`` have shape
    ``(num_blocks, block_size, kv_heads, head_dim)``. Memory: ``2 * layers * num_blocks *
    block_size * kv_heads * head_dim * bytes`` (:attr:`nbytes`), fixed when built; sequences
    take and return blocks from it.
    """

    def __init__(
        self,
        num_layers: int,
        num_blocks: int,
        block_size: int,
        kv_heads: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.num_layers = check_count("num_layers", num_layers)
        self.block_size = check_count("block_size", block_size)
        self.kv_heads = check_count("kv_heads", kv_heads)
        self.head_dim = check_count("head_dim", head_dim)
        dtype = resolve_dtype(dtype)
        self.allocator = BlockAllocator(num_blocks)
        shape = (num_blocks, block_size, kv_heads, head_dim)
        self.k_pools = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v_pools = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.block_tables: dict[int, list[int]] = {}
        self.lengths: dict[int, int] = {}

    @property
    def nbytes(self) -> int:
        """Bytes of all K and V pools (measured on the tensors)."""
        return sum(t.numel() * t.element_size() for t in self.k_pools + self.v_pools)

    def _check_sequence(self, seq_id: int) -> None:
        if seq_id not in self.block_tables:
            raise ValueError(
                f"seq_id must be one of the sequences in the cache {sorted(self.block_tables)}, "
                f"got {seq_id!r}"
            )

    def add_sequence(self, seq_id: int) -> None:
        """Start an empty sequence (no blocks yet: the first append allocates one)."""
        if seq_id in self.block_tables:
            raise ValueError(f"seq_id {seq_id!r} is already in the cache")
        self.block_tables[seq_id] = []
        self.lengths[seq_id] = 0

    def _check_kv(self, name: str, t: object) -> torch.Tensor:
        expected = (self.num_layers, "tokens", self.kv_heads, self.head_dim)
        if (
            not isinstance(t, torch.Tensor)
            or t.dim() != 4
            or t.shape[0] != self.num_layers
            or t.shape[2:] != (self.kv_heads, self.head_dim)
        ):
            raise ValueError(f"{name} must have shape {expected}, got {describe_value(t)}")
        return t

    def _writable_last_block(self, seq_id: int) -> int:
        """The block the next token goes into: a fresh one if the last is full, and a private
        copy if the last is shared (copy-on-write)."""
        table = self.block_tables[seq_id]
        index, slot = divmod(self.lengths[seq_id], self.block_size)
        if index == len(table):  # no block yet, or the last one is full (none reserved)
            table.append(self.allocator.allocate())
        elif self.allocator.ref_counts[table[index]] > 1:
            shared = table[index]
            private = self.allocator.allocate()
            for pool in self.k_pools + self.v_pools:
                pool[private, :slot] = pool[shared, :slot]
            self.allocator.free(shared)  # one reference fewer on the shared block
            table[index] = private
        return table[index]

    def append(self, seq_id: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Append tokens: ``k``, ``v`` of shape ``(num_layers, tokens, kv_heads, head_dim)``."""
        self._check_sequence(seq_id)
        k, v = self._check_kv("k", k), self._check_kv("v", v)
        if k.shape != v.shape:
            raise ValueError(f"k and v must have one shape, got {tuple(k.shape)}, {tuple(v.shape)}")
        slots = self.next_slots(seq_id, k.shape[1])
        for layer in range(self.num_layers):
            self.write(layer, slots, k[layer], v[layer])

    def next_slots(self, seq_id: int, count: int) -> torch.Tensor:
        """Flat slot ids ``block * block_size + offset`` of the next ``count`` tokens.

        Takes blocks as the tokens need them (reserved ones first, see :meth:`reserve`;
        copy-on-write for a shared last block) and advances the sequence's length, so a
        caller can then :meth:`write` each layer's keys and values in one indexed copy.
        """
        self._check_sequence(seq_id)
        check_count("count", count, 0)
        slots = []
        for _ in range(count):
            block = self._writable_last_block(seq_id)
            slots.append(block * self.block_size + self.lengths[seq_id] % self.block_size)
            self.lengths[seq_id] += 1
        return torch.tensor(slots, dtype=torch.long, device=self.k_pools[0].device)

    def write(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store one layer's ``k``, ``v`` ``(tokens, kv_heads, head_dim)`` at ``slots``."""
        shape = (-1, self.kv_heads, self.head_dim)
        self.k_pools[layer].view(shape)[slots] = k.to(self.k_pools[layer].dtype)
        self.v_pools[layer].view(shape)[slots] = v.to(self.v_pools[layer].dtype)

    def reserve(self, seq_id: int, tokens: int) -> None:
        """Allocate blocks now so the sequence's table holds ``tokens`` tokens in all.

        A scheduler reserves a request's blocks when it admits it, so the budget it checked
        cannot be taken by another request before the tokens are written. ValueError (and no
        block taken) when the free list is too short.
        """
        self._check_sequence(seq_id)
        table = self.block_tables[seq_id]
        missing = blocks_needed(check_count("tokens", tokens, 0), self.block_size) - len(table)
        if missing > self.allocator.num_free:
            raise ValueError(
                f"tokens={tokens} needs {missing} more blocks but {self.allocator.num_free} "
                "are free"
            )
        table.extend(self.allocator.allocate() for _ in range(max(missing, 0)))

    def add_shared_sequence(self, seq_id: int, blocks: list[int], length: int) -> None:
        """Start ``seq_id`` on existing full blocks (a cached prefix): each gains a reference."""
        if check_count("length", length, 0) != len(blocks) * self.block_size:
            raise ValueError(
                f"length must fill the {len(blocks)} shared blocks exactly "
                f"({len(blocks) * self.block_size} tokens), got {length}"
            )
        for block in blocks:
            self.allocator._check_owned(block)
        self.add_sequence(seq_id)
        for block in blocks:
            self.allocator.share(block)
        self.block_tables[seq_id] = list(blocks)
        self.lengths[seq_id] = length

    def swap_out(self, seq_id: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Copy a sequence's blocks to CPU tensors and free it from the pool.

        Returns ``(k, v, length)``; k, v: ``(num_layers, blocks, block_size, kv_heads,
        head_dim)`` on the CPU (standing for host memory). :meth:`swap_in` restores it.
        """
        self._check_sequence(seq_id)
        table = torch.tensor(self.block_tables[seq_id], dtype=torch.long)
        table = table.to(self.k_pools[0].device)
        k = torch.stack([pool[table] for pool in self.k_pools]).to("cpu", copy=True)
        v = torch.stack([pool[table] for pool in self.v_pools]).to("cpu", copy=True)
        length = self.lengths[seq_id]
        self.free_sequence(seq_id)
        return k, v, length

    def swap_in(self, seq_id: int, k: torch.Tensor, v: torch.Tensor, length: int) -> None:
        """Bring back a sequence from :meth:`swap_out`'s tensors into freshly taken blocks."""
        expected = (self.num_layers, "blocks", self.block_size, self.kv_heads, self.head_dim)
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, torch.Tensor) or t.dim() != 5 or t.shape[0] != self.num_layers \
                    or t.shape[2:] != (self.block_size, self.kv_heads, self.head_dim):  # fmt: skip
                raise ValueError(f"{name} must have shape {expected}, got {describe_value(t)}")
        check_count("length", length, 0, k.shape[1] * self.block_size)
        self.add_sequence(seq_id)
        self.reserve(seq_id, k.shape[1] * self.block_size)
        table = torch.tensor(self.block_tables[seq_id], dtype=torch.long)
        table = table.to(self.k_pools[0].device)
        for layer in range(self.num_layers):
            self.k_pools[layer][table] = k[layer].to(self.k_pools[layer])
            self.v_pools[layer][table] = v[layer].to(self.v_pools[layer])
        self.lengths[seq_id] = length

    def gather(self, seq_id: int, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of one sequence in one layer, contiguous: ``(length, kv_heads, head_dim)``.

        Reads ``pool[table]`` (one index per block), flattens blocks into tokens and cuts the
        unused tail of the last block.
        """
        self._check_sequence(seq_id)
        layer = check_count("layer", layer, 0, self.num_layers - 1)
        table = torch.tensor(self.block_tables[seq_id], dtype=torch.long)
        n = self.lengths[seq_id]
        shape = (-1, self.kv_heads, self.head_dim)
        k = self.k_pools[layer][table].reshape(shape)[:n]
        v = self.v_pools[layer][table].reshape(shape)[:n]
        return k, v

    def fork(self, parent: int, child: int) -> None:
        """A new sequence ``child`` that shares every block of ``parent`` (no copy)."""
        self._check_sequence(parent)
        self.add_sequence(child)
        for block in self.block_tables[parent]:
            self.allocator.share(block)
        self.block_tables[child] = list(self.block_tables[parent])
        self.lengths[child] = self.lengths[parent]

    def free_sequence(self, seq_id: int) -> None:
        """Drop a sequence: every block loses one reference."""
        self._check_sequence(seq_id)
        for block in self.block_tables.pop(seq_id):
            self.allocator.free(block)
        del self.lengths[seq_id]

    def batch_tables(self, seq_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(block_tables, context_lens)`` for a batch, as :func:`paged_attention_decode` takes.

        block_tables: int32 ``(batch, max_blocks)``, padded with 0 past a sequence's blocks
        (never read: ``context_lens`` stops the reads); context_lens: int32 ``(batch,)``.
        """
        for seq_id in seq_ids:
            self._check_sequence(seq_id)
        width = max((len(self.block_tables[s]) for s in seq_ids), default=0)
        rows = [self.block_tables[s] + [0] * (width - len(self.block_tables[s])) for s in seq_ids]
        device = self.k_pools[0].device
        tables = torch.tensor(rows, dtype=torch.int32, device=device).reshape(len(seq_ids), width)
        lens = torch.tensor([self.lengths[s] for s in seq_ids], dtype=torch.int32, device=device)
        return tables, lens


# --- decode attention -------------------------------------------------------------------


def validate_paged_inputs(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float | None,
) -> float:
    """Check the inputs of a paged decode step; return the softmax scale (1/√head_dim if None).

    q: ``(batch, heads, head_dim)``; k_pool, v_pool: ``(num_blocks, block_size, kv_heads,
    head_dim)`` with ``heads % kv_heads == 0``; block_tables: integer ``(batch, max_blocks)``
    with ids in ``[0, num_blocks)``; context_lens: integer ``(batch,)``, each in
    ``[1, max_blocks * block_size]``.
    """
    for name, t, dims in (("q", q, 3), ("k_pool", k_pool, 4), ("v_pool", v_pool, 4)):
        if not isinstance(t, torch.Tensor) or t.dim() != dims or not t.is_floating_point():
            raise ValueError(
                f"{name} must be a float tensor with {dims} dims, got {describe_value(t)}"
            )
        if min(t.shape) < 1:  # batch = 0 too: the kernels refuse it, so the reference does
            raise ValueError(f"{name} needs every size >= 1, got shape {tuple(t.shape)}")
    if k_pool.shape != v_pool.shape:
        raise ValueError(
            f"k_pool and v_pool must have one shape, got {tuple(k_pool.shape)} and "
            f"{tuple(v_pool.shape)}"
        )
    batch, heads, head_dim = q.shape
    num_blocks, block_size, kv_heads, pool_head_dim = k_pool.shape
    if pool_head_dim != head_dim:
        raise ValueError(f"k_pool has head_dim {pool_head_dim} but q has {head_dim}")
    if heads % kv_heads:
        raise ValueError(
            f"heads of q ({heads}) must be a multiple of kv_heads of the pools ({kv_heads})"
        )
    integer = (torch.int32, torch.int64)
    if (
        not isinstance(block_tables, torch.Tensor)
        or block_tables.dtype not in integer
        or block_tables.dim() != 2
        or block_tables.shape[0] != batch
    ):
        raise ValueError(
            f"block_tables must be an int32/int64 tensor (batch={batch}, max_blocks), "
            f"got {describe_value(block_tables)}"
        )
    if (
        not isinstance(context_lens, torch.Tensor)
        or context_lens.dtype not in integer
        or context_lens.shape != (batch,)
    ):
        raise ValueError(
            f"context_lens must be an int32/int64 tensor of shape ({batch},), "
            f"got {describe_value(context_lens)}"
        )
    capacity = block_tables.shape[1] * block_size
    if batch and (int(context_lens.min()) < 1 or int(context_lens.max()) > capacity):
        raise ValueError(
            f"context_lens must be in [1, max_blocks * block_size = {capacity}], "
            f"got {context_lens.tolist()}"
        )
    if block_tables.numel() and (
        int(block_tables.min()) < 0 or int(block_tables.max()) >= num_blocks
    ):
        raise ValueError(f"block_tables entries must be in [0, num_blocks = {num_blocks})")
    return resolve_scale(scale, head_dim)


def dense_decode_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Attention of one query token over a contiguous cache, in float32 (float64 if q is).

    q: ``(heads, head_dim)``; k, v: ``(n, kv_heads, head_dim)``. Query head ``h`` reads
    key/value head ``h // (heads // kv_heads)`` (GQA). Returns ``(heads, head_dim)``:
    ``softmax(q · Kᵀ · scale) · V`` per head.
    """
    heads, head_dim = q.shape
    scale = resolve_scale(scale, head_dim)
    group = heads // k.shape[1]
    work = torch.promote_types(q.dtype, torch.float32)  # float64 stays float64
    k = k.to(work).repeat_interleave(group, dim=1)  # (n, heads, head_dim)
    v = v.to(work).repeat_interleave(group, dim=1)
    scores = torch.einsum("hd,nhd->hn", q.to(work), k) * scale
    return torch.einsum("hn,nhd->hd", scores.softmax(dim=-1), v)


def paged_attention_decode(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float | None = None,
) -> torch.Tensor:
    """One decode step over a paged cache: the torch reference.

    For each sequence b: gather its first ``context_lens[b]`` tokens through
    ``block_tables[b]`` (token t at ``pool[table[t // block_size], t % block_size]``) and
    run :func:`dense_decode_attention`. q: ``(batch, heads, head_dim)``; returns
    ``(batch, heads, head_dim)`` in q's dtype (computed in float32, or float64 for float64).
    """
    scale = validate_paged_inputs(q, k_pool, v_pool, block_tables, context_lens, scale)
    _, block_size, kv_heads, head_dim = k_pool.shape
    out = torch.empty(q.shape, dtype=torch.promote_types(q.dtype, torch.float32), device=q.device)
    for b in range(q.shape[0]):
        n = int(context_lens[b])
        table = block_tables[b, : blocks_needed(n, block_size)].long()
        k = k_pool[table].reshape(-1, kv_heads, head_dim)[:n]
        v = v_pool[table].reshape(-1, kv_heads, head_dim)[:n]
        out[b] = dense_decode_attention(q[b], k, v, scale)
    return out.to(q.dtype)


# --- simulation: fragmentation ----------------------------------------------------------


def sample_requests(
    num_requests: int, max_prompt: int, max_output: int, *, seed: int = 0
) -> list[tuple[int, int]]:
    """``num_requests`` (prompt, output) token counts, each uniform in ``[1, max]`` (seeded)."""
    check_count("num_requests", num_requests)
    check_count("max_prompt", max_prompt)
    check_count("max_output", max_output)
    g = torch.Generator().manual_seed(check_count("seed", seed, minimum=0))
    prompts = torch.randint(1, max_prompt + 1, (num_requests,), generator=g)
    outputs = torch.randint(1, max_output + 1, (num_requests,), generator=g)
    return list(zip(prompts.tolist(), outputs.tolist(), strict=True))


@dataclass(frozen=True)
class FragmentationReport:
    """Token slots for a set of finished requests (multiply by bytes per token for bytes).

    used: slots holding a token, ``sum(length)``;
    contiguous_reserved: ``requests * max_len`` (each request reserves the longest possible);
    paged_reserved: ``sum(ceil(length / block_size) * block_size)``.
    """

    used: int
    contiguous_reserved: int
    paged_reserved: int

    @property
    def contiguous_waste(self) -> float:
        """Fraction of the contiguous reservation never written: ``1 - used / reserved``."""
        return 1 - self.used / self.contiguous_reserved

    @property
    def paged_waste(self) -> float:
        """Fraction of the paged blocks never written (the tails of last blocks)."""
        return 1 - self.used / self.paged_reserved


def fragmentation(
    requests: list[tuple[int, int]], block_size: int, max_len: int | None = None
) -> FragmentationReport:
    """Slots used vs reserved for ``requests`` (prompt, output) at their final length.

    ``max_len`` (the contiguous reservation per request) defaults to the longest possible
    request, ``max(prompt) + max(output)``.
    """
    check_count("block_size", block_size)
    if not requests:
        raise ValueError("requests must hold at least one (prompt, output) pair")
    lengths = [check_count("prompt", p) + check_count("output", o) for p, o in requests]
    if max_len is None:
        max_len = max(p for p, _ in requests) + max(o for _, o in requests)
    if check_count("max_len", max_len) < max(lengths):
        raise ValueError(f"max_len must be >= the longest request {max(lengths)}, got {max_len}")
    return FragmentationReport(
        used=sum(lengths),
        contiguous_reserved=len(lengths) * max_len,
        paged_reserved=sum(blocks_needed(n, block_size) * block_size for n in lengths),
    )


def fragmentation_figure(
    requests: list[tuple[int, int]],
    block_sizes: tuple[int, ...] = (1, 4, 8, 16, 32, 64, 128, 256),
    max_len: int | None = None,
) -> go.Figure:
    """Wasted share of reserved KV memory (%) vs block size, paged vs contiguous."""
    reports = [fragmentation(requests, b, max_len) for b in block_sizes]
    figure = go.Figure(
        [
            go.Scatter(
                x=list(block_sizes),
                y=[100 * r.paged_waste for r in reports],
                name="paged: tail of the last block",
                mode="lines+markers",
            ),
            go.Scatter(
                x=list(block_sizes),
                y=[100 * reports[0].contiguous_waste] * len(block_sizes),
                name="contiguous: reserve max_len per request",
                line=dict(dash="dash"),
            ),
        ]
    )
    figure.update_layout(
        xaxis=dict(title="block size (tokens per block)", type="log"),
        yaxis=dict(title="wasted share of reserved KV memory (%)", range=[0, 100]),
        template="plotly_white",
    )
    title = f"KV memory reserved but never written, {len(requests)} requests"
    return style(figure, title, width=900, height=420)


# --- simulation: prefix sharing ---------------------------------------------------------


@dataclass(frozen=True)
class PrefixSharingReport:
    """Blocks for requests that all start with the same ``prefix`` tokens.

    private: every request holds its own copy, ``sum(ceil((prefix + suffix) / B))``;
    shared: the ``floor(prefix / B)`` full prefix blocks exist once; the partly filled
    prefix block is copied on the first write (copy-on-write), so each request holds
    ``ceil((prefix mod B + suffix) / B)`` blocks of its own.
    """

    private_blocks: int
    shared_blocks: int

    @property
    def saving(self) -> float:
        """Fraction of blocks saved by sharing: ``1 - shared / private``."""
        return 1 - self.shared_blocks / self.private_blocks


def prefix_sharing(prefix: int, suffixes: list[int], block_size: int) -> PrefixSharingReport:
    """Blocks needed with and without sharing a ``prefix``-token prompt across requests."""
    check_count("prefix", prefix, 0)
    check_count("block_size", block_size)
    if not suffixes:
        raise ValueError("suffixes must hold at least one suffix length")
    for s in suffixes:
        check_count("suffix", s, 0)
    full, rest = divmod(prefix, block_size)
    private = sum(blocks_needed(prefix + s, block_size) for s in suffixes)
    shared = full + sum(blocks_needed(rest + s, block_size) for s in suffixes)
    return PrefixSharingReport(private_blocks=private, shared_blocks=shared)


def prefix_sharing_figure(
    prefix: int, suffixes: list[int], block_sizes: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
) -> go.Figure:
    """Blocks saved by sharing the prompt (%) vs block size."""
    savings = [100 * prefix_sharing(prefix, suffixes, b).saving for b in block_sizes]
    figure = go.Figure(go.Bar(x=[str(b) for b in block_sizes], y=savings, name="saving"))
    figure.update_layout(
        xaxis=dict(title="block size (tokens per block)"),
        yaxis=dict(title="KV blocks saved (%)", range=[0, 100]),
        template="plotly_white",
    )
    title = f"Sharing a {prefix}-token system prompt across {len(suffixes)} requests"
    return style(figure, title, width=900, height=400)
